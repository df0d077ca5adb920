// Small progressive enhancements; every page works without them.
document.addEventListener("change", (event) => {
  // Elements marked data-autosubmit submit their form on change (the rows-per-page picker).
  const el = event.target;
  if (el.matches("[data-autosubmit]") && el.form) el.form.requestSubmit();
});

// The push selection of the Clients and Leads tabs. The ticked ids live on the server, in
// the session (clients/selection.py), so they survive changing page, sort or search: each
// change is posted, one request at a time, and the server's answer is the new state.
// Without JavaScript each row's box is still sent with the "the selected" button.
function setUpSelection() {
  const form = document.querySelector("form[data-selection-url]");
  const initial = document.getElementById("selection-ids");
  if (!form || !initial) return;
  const url = form.dataset.selectionUrl;
  const tab = form.dataset.tab;
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  const status = document.querySelector("[data-selection-status]");
  const message = document.querySelector("[data-selection-message]");
  const pageBox = document.querySelector("input.select-page");
  let selected = new Set(JSON.parse(initial.textContent));
  const pending = [];
  let busy = false;

  const rowBoxes = () => Array.from(document.querySelectorAll("input.row-select"));
  function render() {
    const count = selected.size;
    document.querySelectorAll("[data-selected-count]").forEach((el) => { el.textContent = count; });
    document.querySelectorAll("[data-needs-selection]").forEach((el) => { el.disabled = count === 0; });
    if (status) status.hidden = count === 0;
    const boxes = rowBoxes();
    boxes.forEach((box) => { box.checked = selected.has(Number(box.value)); });
    if (pageBox) {
      const ticked = boxes.filter((box) => box.checked).length;
      pageBox.hidden = boxes.length === 0;
      pageBox.checked = boxes.length > 0 && ticked === boxes.length;
      pageBox.indeterminate = ticked > 0 && ticked < boxes.length;
    }
  }
  function say(text) { if (message) message.textContent = text || ""; }

  async function pump() {
    if (busy || pending.length === 0) return;
    busy = true;
    const { action, ids } = pending.shift();
    const body = new URLSearchParams({ tab, action });
    ids.forEach((id) => body.append("ids", id));
    try {
      const response = await fetch(url, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { ...headers, Accept: "application/json" },
      });
      const type = response.headers.get("Content-Type") || "";
      if (!type.includes("application/json")) {
        // A lost session answers with the log-in page: go there, then back here.
        window.location.reload();
        return;
      }
      const data = await response.json();
      if (response.ok) {
        // Later changes are already shown; the server's state is taken once they are sent.
        if (pending.length === 0) selected = new Set(data.ids);
        say(data.message);
      } else {
        say(data.error);
      }
    } catch (error) {
      say(form.dataset.networkError || String(error));
    } finally {
      busy = false;
      render();
      pump();
    }
  }
  function change(action, ids) {
    if (ids.length === 0) return;
    ids.forEach((id) => (action === "add" ? selected.add(id) : selected.delete(id)));
    render();
    pending.push({ action, ids });
    pump();
  }

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (box.matches("input.row-select")) {
      change(box.checked ? "add" : "remove", [Number(box.value)]);
    } else if (box === pageBox) {
      const ids = rowBoxes().map((b) => Number(b.value));
      change(box.checked ? "add" : "remove", ids.filter((id) => selected.has(id) !== box.checked));
    }
  });
  if (status) {
    status.addEventListener("submit", (event) => {
      event.preventDefault();
      say("");
      selected = new Set();
      render();
      pending.push({ action: "clear", ids: [] });
      pump();
    });
  }
  // Back to this page from the browser's history: the selection may have changed since.
  window.addEventListener("pageshow", async (event) => {
    if (!event.persisted) return;
    const response = await fetch(`${url}?tab=${encodeURIComponent(tab)}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (response.ok) {
      selected = new Set((await response.json()).ids);
      render();
    }
  });
  render();
}
document.addEventListener("DOMContentLoaded", setUpSelection);

// Inline editors (htmx swaps one card of the client page): keep the keyboard where the user
// works. An opened form gets the focus on its first invalid field, else its first field; a
// closed one gives it back to the card's edit control.
document.addEventListener("htmx:afterSettle", (event) => {
  const card = event.target;
  const target = event.detail && event.detail.target;
  if (!(card instanceof HTMLElement) || !card.matches(".card[id]")) return;
  if (!target || target.id !== card.id) return;
  const fields = "form.edit-form :is(input, select, textarea):not([type=hidden]):not([disabled])";
  const control = card.querySelector(`${fields}[aria-invalid=true]`)
    || card.querySelector(fields)
    || card.querySelector(".card-header :is(a, button)");
  if (control) control.focus();
});

// Whole rows of the Clients and Leads tabs open the client page. Their links and checkboxes
// keep working on their own, selecting text does not navigate, Ctrl/⌘-click and the middle
// button open a new tab. From the keyboard, each row's links are the way in (the row shows
// its focus, see app.css).
function rowTarget(event) {
  const row = event.target.closest("tr[data-href]");
  if (!row || event.target.closest("a, button, input, label, select, textarea")) return null;
  if (String(window.getSelection ? window.getSelection() : "")) return null;
  return row.dataset.href;
}
document.addEventListener("click", (event) => {
  const url = event.button === 0 && rowTarget(event);
  if (!url) return;
  if (event.ctrlKey || event.metaKey || event.shiftKey) {
    window.open(url, "_blank", "noopener");
  } else {
    window.location.assign(url);
  }
});
document.addEventListener("auxclick", (event) => {
  const url = event.button === 1 && rowTarget(event);
  if (url) window.open(url, "_blank", "noopener");
});
