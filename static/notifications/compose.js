// Compose page: live size of the notification against the 4 KB limit, and the preview.
(() => {
  const form = document.querySelector("form.push-form");
  const size = document.getElementById("push-size");
  if (!form || !size) return;
  const max = Number(size.dataset.maxBytes);
  const empty = Number(size.dataset.emptyBytes);
  const used = size.querySelector("[data-push-used]");
  const encoder = new TextEncoder();
  // Bytes a string adds to the JSON payload (its JSON-escaped UTF-8, without the quotes).
  const jsonBytes = (text) => encoder.encode(JSON.stringify(text)).length - 2;
  const field = (name) => form.elements.namedItem(name);
  const preview = {
    title: document.querySelector("[data-preview-title]"),
    body: document.querySelector("[data-preview-body]"),
    icon: document.querySelector("[data-preview-icon]"),
    image: document.querySelector("[data-preview-image]"),
  };
  const setImage = (img, url) => {
    const ok = /^https?:\/\//.test(url);
    img.hidden = !ok;
    if (ok) img.src = url; else img.removeAttribute("src");
  };
  function update() {
    const values = Object.fromEntries(
      ["title", "body", "icon", "image"].map((name) => [name, field(name) ? field(name).value : ""]),
    );
    const total = empty + Object.values(values).reduce((sum, v) => sum + jsonBytes(v), 0);
    used.textContent = total.toLocaleString();
    size.classList.toggle("push-size-over", total > max);
    const submit = form.querySelector("button[type=submit]");
    if (submit && !submit.dataset.noDevices) submit.disabled = total > max;
    if (preview.title) preview.title.textContent = values.title || preview.title.dataset.empty;
    if (preview.body) preview.body.textContent = values.body || preview.body.dataset.empty;
    if (preview.icon) setImage(preview.icon, values.icon);
    if (preview.image) setImage(preview.image, values.image);
    const later = form.querySelector("input[name=when][value=later]");
    const sendAt = field("send_at");
    if (later && sendAt) sendAt.closest(".field").hidden = !later.checked;
  }
  const submit = form.querySelector("button[type=submit]");
  if (submit && submit.disabled) submit.dataset.noDevices = "1";
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
