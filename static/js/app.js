// Small progressive enhancements; every page works without them.
document.addEventListener("change", (event) => {
  // Elements marked data-autosubmit submit their form on change (the rows-per-page picker).
  const el = event.target;
  if (el.matches("[data-autosubmit]") && el.form) el.form.requestSubmit();
});

// "Send a push to the selected (n)": count the ticked rows and enable the button.
function updateSelection() {
  const count = document.querySelectorAll("input.row-select:checked").length;
  document.querySelectorAll("[data-selected-count]").forEach((el) => { el.textContent = count; });
  document.querySelectorAll("[data-needs-selection]").forEach((el) => { el.disabled = count === 0; });
}
document.addEventListener("change", (event) => {
  if (event.target.matches("input.row-select")) updateSelection();
});
document.addEventListener("DOMContentLoaded", updateSelection);

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
