// The DEBUG demo storefront page: subscribe this browser for the chosen demo customer.
(() => {
  const select = document.getElementById("customer");
  if (select) select.addEventListener("change", () => select.form.requestSubmit());
  const box = document.getElementById("demo");
  if (!box) return;
  const status = box.querySelector("[data-demo-status]");
  const options = {
    // data-api is the storefront API's push/key URL: the API's root is two levels up.
    api: new URL("..", new URL(box.dataset.api, window.location.href)).href,
    token: box.dataset.token,
    serviceWorker: box.dataset.sw,
  };
  const show = (text) => { status.textContent = text; };
  if (!window.BackofficePush.supported()) show("This browser does not support push notifications.");
  box.querySelector("[data-demo-subscribe]").addEventListener("click", () => {
    show("Subscribing…");
    window.BackofficePush.subscribe(options)
      .then((sub) => show(`Subscribed. Endpoint: ${sub.endpoint.slice(0, 60)}…`))
      .catch((error) => show(`Not subscribed: ${error.message}`));
  });
  box.querySelector("[data-demo-unsubscribe]").addEventListener("click", () => {
    window.BackofficePush.unsubscribe(options)
      .then((done) => show(done ? "Notifications are off for this browser." : "This browser was not subscribed."))
      .catch((error) => show(`Error: ${error.message}`));
  });
})();
