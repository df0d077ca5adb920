"""The storefront's push snippet (static/notifications/storefront.js), run by Node against
the live back office: it subscribes and unsubscribes through the storefront API
(/api/v1/push/, customer token in X-Customer-Token), not the deprecated /push/storefront/.
The browser's own push objects (permission, service worker, PushManager) are recorded; the
HTTP calls are real."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from notifications.models import PushSubscription, SubscriptionStatus
from notifications.tokens import storefront_token_issue
from tests.factories import CustomerFactory
from tests.notifications.conftest import push_service, vapid_keys  # noqa: F401
from tests.notifications.fixtures_push import vapid_settings  # noqa: F401

NODE = shutil.which("node")
SNIPPET = Path(settings.BASE_DIR) / "static" / "notifications" / "storefront.js"

HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const [file, base, token, subscriptionJson] = process.argv.slice(2);
const browserSubscription = JSON.parse(subscriptionJson);
const called = [];
let current = null;
const registration = {
  pushManager: {
    getSubscription: async () => current,
    subscribe: async (options) => {
      current = {
        options,
        endpoint: browserSubscription.endpoint,
        toJSON: () => browserSubscription,
        unsubscribe: async () => { current = null; return true; },
      };
      return current;
    },
  },
};
const Notification = { requestPermission: async () => "granted" };
const window = { location: { href: base + "/shop/" }, PushManager: function () {}, Notification };
const serviceWorker = {
  register: async (url) => { window.registered = url; },
  ready: Promise.resolve(registration),
};
const navigator = { serviceWorker };
const recordingFetch = (url, init) => { called.push(String(url)); return fetch(url, init); };
vm.runInNewContext(fs.readFileSync(file, "utf8"), {
  window, navigator, Notification, fetch: recordingFetch, URL, atob, Uint8Array,
});
(async () => {
  const api = base + "/api/v1/push/";
  const options = { api, token, serviceWorker: "/sw.js" };
  const out = {};
  out.subscribed = (await window.BackofficePush.subscribe(options)).endpoint;
  out.registered = window.registered;
  out.unsubscribed = await window.BackofficePush.unsubscribe(options);
  try {
    await window.BackofficePush.subscribe({ ...options, token: "1.2.forged" });
  } catch (error) {
    out.error = error.message;
  }
  out.called = called;
  console.log(JSON.stringify(out));
})().catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.mark.skipif(NODE is None, reason="needs Node.js")
@pytest.mark.usefixtures("vapid_settings")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_snippet_subscribes_and_unsubscribes_through_the_api(
    live_server,
    push_service,  # noqa: F811
    tmp_path,
):
    customer = CustomerFactory()
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    subscription = push_service.new_subscription()
    out = subprocess.run(
        [
            NODE,
            str(harness),
            str(SNIPPET),
            live_server.url,
            storefront_token_issue(customer_id=customer.pk),
            json.dumps(subscription),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["subscribed"] == subscription["endpoint"]
    assert result["unsubscribed"] is True
    # The API's problem document's detail, as the promise's error.
    assert result["error"] == "The customer token is invalid or expired."
    paths = [url.removeprefix(live_server.url) for url in result["called"]]
    assert paths == [
        "/api/v1/push/key",
        "/api/v1/push/subscriptions",
        "/api/v1/push/subscriptions/remove",
        "/api/v1/push/key",
        "/api/v1/push/subscriptions",
    ]
    assert "api=" + live_server.url + "/api/v1/push/" in result["registered"].replace(
        "%3A", ":"
    ).replace("%2F", "/")
    stored = PushSubscription.objects.get()
    assert stored.customer == customer and stored.status != SubscriptionStatus.ACTIVE
