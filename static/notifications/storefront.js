/*
 * Push notifications for a shop's storefront. Include this file, serve sw.js from the
 * storefront's own origin (its scope is where it is served), then, for a logged-in customer:
 *
 *   BackofficePush.subscribe({
 *     api: "https://backoffice.example.com/api/v1/push/",  // the back office's push API
 *     token: "<customer token issued by the shop>",        // see notifications/tokens.py
 *     serviceWorker: "/sw.js",
 *   }).then(...)
 *   BackofficePush.unsubscribe({api, token, serviceWorker})
 *
 * It calls the storefront API (/api/v1/push/: key, subscriptions, subscriptions/remove) with
 * the customer token as X-Customer-Token; the older /push/storefront/ endpoints are
 * deprecated. subscribe() asks the browser's permission, so call it from a click.
 */
(function (global) {
  "use strict";

  function base64UrlToBytes(text) {
    const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(padded);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  // Errors are problem+json documents (RFC 9457): their detail says what went wrong.
  async function call(url, init) {
    const response = await fetch(url, { credentials: "omit", ...init });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || data.title || `HTTP ${response.status}`);
    return data;
  }

  function post(url, token, body) {
    return call(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Customer-Token": token },
      body: JSON.stringify(body),
    });
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
    const publicKey = (await call(new URL("key", options.api))).public_key;
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
    await post(new URL("subscriptions", options.api), options.token, { subscription: subscription.toJSON() });
    return subscription;
  }

  async function unsubscribe(options) {
    if (!supported()) return false;
    const reg = await registration(options);
    const subscription = await reg.pushManager.getSubscription();
    if (!subscription) return false;
    await post(new URL("subscriptions/remove", options.api), options.token, { endpoint: subscription.endpoint });
    await subscription.unsubscribe();
    return true;
  }

  global.BackofficePush = { supported, subscribe, unsubscribe };
})(window);
