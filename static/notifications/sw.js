/*
 * The storefront's service worker for the shop's push notifications. Serve it from the
 * storefront's origin; storefront.js registers it with ?api=<the back office's storefront
 * API, https://<back office>/api/v1/>.
 */
"use strict";

const API = new URL(self.location.href).searchParams.get("api");

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// Every push is shown: browsers require a visible notification for each message.
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = { body: event.data ? event.data.text() : "" };
  }
  const options = {
    body: data.body || "",
    data: { url: data.url || "/" },
    // The tag is the campaign ("campaign-<id>"): if a device ever gets the same campaign
    // twice, the second replaces the first notification, silently (renotify false: no new
    // sound or vibration), instead of showing two.
    tag: data.tag || undefined,
    renotify: false,
  };
  if (data.icon) options.icon = data.icon;
  if (data.image) options.image = data.image;
  event.waitUntil(self.registration.showNotification(data.title || "", options));
});

// A click opens the (click-tracking) link of the notification.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(self.clients.openWindow(url));
});

// The browser renewed the subscription: tell the back office, proving it is the same browser
// with the old subscription's authentication secret.
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil((async () => {
    if (!API) return;
    const old = event.oldSubscription;
    let next = event.newSubscription;
    if (!next && old) {
      next = await self.registration.pushManager.subscribe(old.options);
    }
    if (!old || !next) return;
    const oldJson = old.toJSON();
    await fetch(new URL("push/subscriptions/replace", API), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "omit",
      body: JSON.stringify({
        old_endpoint: oldJson.endpoint,
        old_auth: oldJson.keys && oldJson.keys.auth,
        subscription: next.toJSON(),
      }),
    });
  })());
});
