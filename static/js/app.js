// Small progressive enhancements; every page works without them.
document.addEventListener("change", (event) => {
  // Elements marked data-autosubmit submit their form on change (the rows-per-page picker).
  const el = event.target;
  if (el.matches("[data-autosubmit]") && el.form) el.form.requestSubmit();
});
