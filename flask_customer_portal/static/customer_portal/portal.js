// Progressive enhancement only: every page works without it.
// A copy button names the id of an input (its value) or of any element (its text);
// buttons that are useless without this script start `hidden`; `data-copied` is
// the (translated) word the button shows for a moment after copying.
document.querySelectorAll("[data-copy]").forEach((button) => {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText("value" in field ? field.value : field.textContent);
    } catch {
      if (!field.select) return;
      field.select();
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = button.dataset.copied || "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
// A form that charges money is sent once: its button is disabled after the first
// click (the server refuses a second charge anyway, by the form's idempotency key).
document.querySelectorAll("form[data-submit-once]").forEach((form) => {
  form.addEventListener("submit", () => {
    form.querySelectorAll("button[type=submit]").forEach((button) => {
      setTimeout(() => { button.disabled = true; }, 0);
    });
  });
});
