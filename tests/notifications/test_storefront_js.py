"""The storefront's push snippet (static/notifications/storefront.js) and service worker
(static/notifications/sw.js) call the storefront API, not the deprecated /push/storefront/
URLs: run by Node with the browser objects they use, every request they make is recorded,
then sent to the back office as is, which must accept it."""

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from notifications.models import PushSubscription, SubscriptionStatus
from notifications.tokens import storefront_token_issue
from tests.factories import CustomerFactory
from tests.notifications.fixtures_push import vapid_settings  # noqa: F401

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("vapid_settings"),
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js"),
]

STATIC = Path(settings.BASE_DIR) / "static" / "notifications"
API = "https://bo.example/api/v1/"

# argv: storefront.js, sw.js, then a JSON object: the key answer, the token, the browser's
# subscription, and the renewed one. Prints the requests both scripts made.
HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const [snippet, worker, given] = process.argv.slice(2);
const input = JSON.parse(given);
const requests = [];
function fetch(url, init = {}) {
  requests.push({ url: String(url), method: init.method || "GET", headers: init.headers || {},
                  body: init.body === undefined ? null : init.body });
  const data = String(url).endsWith("/push/key") ? input.key : {};
  return Promise.resolve({ ok: true, status: 200, json: async () => data });
}
const asSubscription = (json) => ({ endpoint: json.endpoint, options: {}, toJSON: () => json,
                                    unsubscribe: async () => true });
let current = null;
const registration = { pushManager: {
  getSubscription: async () => current,
  subscribe: async () => (current = asSubscription(input.subscription)),
} };
const window = {
  location: { href: "https://shop.example/account" },
  PushManager: function () {},
  Notification: { requestPermission: async () => "granted" },
};
const navigator = { serviceWorker: { register: async () => registration,
                                     ready: Promise.resolve(registration) } };
vm.runInNewContext(fs.readFileSync(snippet, "utf8"), {
  window, navigator, Notification: window.Notification, fetch, URL, atob, Uint8Array,
});
const listeners = {};
const self = {
  location: { href: "https://shop.example/sw.js?api=" + encodeURIComponent(input.api) },
  addEventListener: (name, fn) => { listeners[name] = fn; },
  registration,
};
vm.runInNewContext(fs.readFileSync(worker, "utf8"), { self, URL, fetch });
(async () => {
  const options = { api: input.api, token: input.token, serviceWorker: "/sw.js" };
  await window.BackofficePush.subscribe(options);
  let waited;
  listeners.pushsubscriptionchange({
    oldSubscription: asSubscription(input.subscription),
    newSubscription: asSubscription(input.renewed),
    waitUntil: (p) => { waited = p; },
  });
  await waited;
  current = asSubscription(input.renewed);
  await window.BackofficePush.unsubscribe(options);
  console.log(JSON.stringify(requests));
})();
"""


def _replay(client: Client, request: dict):
    """Send a request the scripts made to the back office, as the browser would."""
    path = urlsplit(request["url"]).path
    headers = {k: v for k, v in request["headers"].items() if k != "Content-Type"}
    if request["method"] == "GET":
        return client.get(path, headers=headers)
    return client.post(path, request["body"], content_type="application/json", headers=headers)


def test_the_snippet_and_the_service_worker_use_the_storefront_api(push_service, tmp_path):
    customer = CustomerFactory()
    client = Client()
    key = client.get("/api/v1/push/key").json()
    subscription, renewed = push_service.new_subscription(), push_service.new_subscription()
    given = {
        "api": API,
        "key": key,
        "token": storefront_token_issue(customer_id=customer.pk),
        "subscription": subscription,
        "renewed": renewed,
    }
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    scripts = [str(STATIC / "storefront.js"), str(STATIC / "sw.js")]
    out = subprocess.run(
        ["node", str(harness), *scripts, json.dumps(given)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    requests = json.loads(out.stdout)
    paths = [(r["method"], urlsplit(r["url"]).path) for r in requests]
    assert paths == [
        ("GET", "/api/v1/push/key"),
        ("POST", "/api/v1/push/subscriptions"),
        ("POST", "/api/v1/push/subscriptions/replace"),
        ("POST", "/api/v1/push/subscriptions/remove"),
    ]
    assert not any("/push/storefront/" in r["url"] for r in requests)

    key_again, subscribe, replace, remove = (_replay(client, r) for r in requests)
    assert key_again.json() == key and "Deprecation" not in key_again
    assert subscribe.status_code == 201, subscribe.content
    assert replace.status_code == 201, replace.content
    assert remove.json() == {"unsubscribed": True}
    rows = {s.endpoint: s.status for s in PushSubscription.objects.filter(customer=customer)}
    assert rows == {
        subscription["endpoint"]: SubscriptionStatus.UNSUBSCRIBED,
        renewed["endpoint"]: SubscriptionStatus.UNSUBSCRIBED,
    }
