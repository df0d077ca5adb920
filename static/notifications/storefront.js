/*
 * Push notifications for a shop's storefront. Include this file, serve sw.js from the
 * storefront's own origin (its scope is where it is served), then, for a logged-in customer:
 *
 *   BackofficePush.subscribe({
 *     api: "https://backoffice.example.com/api/v1/",  // the back office's storefront API
 *     token: "<customer token issued by the shop>",    // see notifications/tokens.py
 *     serviceWorker: "/sw.js",
 *   }).then(...)
 *   BackofficePush.unsubscribe({api, token, serviceWorker})
 *
 * subscribe() asks the browser's permission, so call it from a click. It calls the storefront
 * API's push endpoints (GET push/key, POST push/subscriptions, POST push/subscriptions/remove,
 * the customer token in X-Customer-Token), not the deprecated /push/storefront/ ones.
 */
(function (global) {
  "use strict";

  function base64UrlToBytes(text) {
    const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(padded);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  async function post(url, token, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Customer-Token": token },
      body: JSON.stringify(body),
      credentials: "omit",
    });
    // Errors are problem documents (RFC 9457): the detail says what was wrong.
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || data.title || `HTTP ${response.status}`);
    return data;
  }

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in global && "Notification" in global;
  }

  async function registration(options) {
    // The api URL goes to the service worker so pushsubscriptionchange can reach it.
    const url = new URL(options.serviceWorker, global.location.href);
    url.searchParams.set("api", new URL(options.api, global.location.href).href);
    await navigator.serviceWorker.register(url.href);
    return navigator.serviceWorker.ready;
  }

  async function subscribe(options) {
    if (!supported()) throw new Error("This browser does not support push notifications.");
    const permission = await Notification.requestPermission();
    if (permission !== "granted") throw new Error("Notifications were not allowed.");
    const reg = await registration(options);
    const key = await fetch(new URL("push/key", options.api), { credentials: "omit" });
    if (!key.ok) throw new Error(`Push is not available (HTTP ${key.status}).`);
    const publicKey = (await key.json()).public_key;
    let subscription = await reg.pushManager.getSubscription();
    if (subscription) {
      // A subscription made for another application server key cannot be reused.
      const current = subscription.options && subscription.options.applicationServerKey;
      const wanted = base64UrlToBytes(publicKey);
      if (current && new Uint8Array(current).join() !== wanted.join()) {
        await subscription.unsubscribe();
        subscription = null;
      }
    }
    if (!subscription) {
      subscription = await reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64UrlToBytes(publicKey),
      });
    }
    await post(new URL("push/subscriptions", options.api), options.token, { subscription: subscription.toJSON() });
    return subscription;
  }

  async function unsubscribe(options) {
    if (!supported()) return false;
    const reg = await registration(options);
    const subscription = await reg.pushManager.getSubscription();
    if (!subscription) return false;
    await post(new URL("push/subscriptions/remove", options.api), options.token, { endpoint: subscription.endpoint });
    await subscription.unsubscribe();
    return true;
  }

  global.BackofficePush = { supported, subscribe, unsubscribe };
})(window);
