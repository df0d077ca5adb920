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
