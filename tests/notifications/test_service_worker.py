"""The storefront's service worker (static/notifications/sw.js), run by Node with the
service-worker globals it uses recorded: a campaign received twice shows one notification."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

NODE = shutil.which("node")
SW = Path(settings.BASE_DIR) / "static" / "notifications" / "sw.js"

HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const shown = new Map();  // tag -> notification, as a browser keeps them
const log = [];
const listeners = {};
const self = {
  location: { href: "https://shop.example/sw.js?api=https://bo.example/push/storefront/" },
  addEventListener: (name, fn) => { listeners[name] = fn; },
  skipWaiting: () => {},
  clients: { claim: () => {}, openWindow: () => {} },
  registration: {
    showNotification: async (title, options) => {
      const replaced = options.tag !== undefined && shown.has(options.tag);
      log.push({ title, options, replaced });
      shown.set(options.tag === undefined ? Symbol() : options.tag, { title, options });
    },
  },
};
vm.runInNewContext(fs.readFileSync(process.argv[2], "utf8"), { self, URL, fetch: () => {} });
const pushes = JSON.parse(process.argv[3]);
(async () => {
  for (const payload of pushes) {
    let waited;
    listeners.push({
      data: { json: () => payload, text: () => JSON.stringify(payload) },
      waitUntil: (p) => { waited = p; },
    });
    await waited;
  }
  const visible = [...shown.values()].map((n) => n.title);
  console.log(JSON.stringify({ log, visible }));
})();
"""


@pytest.mark.skipif(NODE is None, reason="needs Node.js")
def test_the_same_campaign_twice_replaces_the_first_notification_silently(tmp_path):
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    campaign = {"title": "Sale", "body": "-20%", "url": "https://bo.example/push/c/x"}
    pushes = [
        {**campaign, "tag": "campaign-7"},
        {**campaign, "tag": "campaign-8", "title": "Other"},
        {**campaign, "tag": "campaign-7"},  # a duplicate of the first
    ]
    out = subprocess.run(
        [NODE, str(harness), str(SW), json.dumps(pushes)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result = json.loads(out.stdout)
    tags = [entry["options"]["tag"] for entry in result["log"]]
    assert tags == ["campaign-7", "campaign-8", "campaign-7"]
    assert all(entry["options"]["renotify"] is False for entry in result["log"])
    assert [entry["replaced"] for entry in result["log"]] == [False, False, True]
    assert sorted(result["visible"]) == ["Other", "Sale"]


RENEWAL = r"""
const fs = require("fs");
const vm = require("vm");
const listeners = {};
const sent = [];
const self = {
  location: { href: "https://shop.example/sw.js?api=" + encodeURIComponent(process.argv[3]) },
  addEventListener: (name, fn) => { listeners[name] = fn; },
  skipWaiting: () => {},
  clients: { claim: () => {} },
  registration: {},
};
const fetch = async (url, init) => {
  sent.push({ url: String(url), body: JSON.parse(init.body) });
};
vm.runInNewContext(fs.readFileSync(process.argv[2], "utf8"), { self, URL, fetch });
const subscription = (endpoint, auth) => ({
  toJSON: () => ({ endpoint, keys: { p256dh: "k", auth } }),
});
let waited;
listeners.pushsubscriptionchange({
  oldSubscription: subscription("https://push.example/old", "old-auth"),
  newSubscription: subscription("https://push.example/new", "new-auth"),
  waitUntil: (p) => { waited = p; },
});
waited.then(() => console.log(JSON.stringify(sent)));
"""


@pytest.mark.skipif(NODE is None, reason="needs Node.js")
@pytest.mark.parametrize(
    ("api", "path", "old_keys"),
    [
        (
            "https://bo.example/api/v1/push/",
            "/api/v1/push/subscriptions/replace",
            ("old_endpoint", "old_auth"),
        ),
        # A worker registered by an older snippet keeps calling the deprecated endpoint.
        (
            "https://bo.example/push/storefront/",
            "/push/storefront/resubscribe",
            ("oldEndpoint", "oldAuth"),
        ),
    ],
)
def test_a_renewed_subscription_is_reported_to_the_api_it_was_registered_with(
    tmp_path, api, path, old_keys
):
    harness = tmp_path / "renewal.js"
    harness.write_text(RENEWAL)
    out = subprocess.run(
        [NODE, str(harness), str(SW), api], capture_output=True, text=True, check=True, timeout=30
    )
    (sent,) = json.loads(out.stdout)
    assert sent["url"] == "https://bo.example" + path
    endpoint_key, auth_key = old_keys
    assert sent["body"][endpoint_key] == "https://push.example/old"
    assert sent["body"][auth_key] == "old-auth"
    assert sent["body"]["subscription"]["endpoint"] == "https://push.example/new"
