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
