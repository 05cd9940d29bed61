/* The Stripe provider's pages: card entry (SetupIntent) and the 3-D Secure step (PaymentIntent).
   Stripe.js sends the card to Stripe; this page only learns whether it worked. */
(function () {
  "use strict";
  function start(form, run) {
    var error = document.getElementById("cp-card-error");
    var button = form.querySelector("button[type=submit]");
    if (typeof window.Stripe !== "function") {
      error.textContent = form.dataset.unavailable;
      button.disabled = true;
      return;
    }
    var stripe = window.Stripe(form.dataset.key, {locale: form.dataset.locale});
    var submit = run(stripe, form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      error.textContent = "";
      submit().then(function (message) {
        if (message) {
          error.textContent = message;
          button.disabled = false;
        } else {
          window.location.assign(form.dataset.return);
        }
      });
    });
  }

  function setup(stripe, form) {
    var card = stripe.elements({locale: form.dataset.locale}).create("card");
    card.mount("#cp-card-element");
    return function () {
      var data = {payment_method: {card: card, billing_details: {email: form.dataset.email}}};
      return stripe.confirmCardSetup(form.dataset.secret, data).then(function (result) {
        if (!result.error) return null;
        return form.dataset.failed + " " + (result.error.message || "");
      });
    };
  }

  function authenticate(stripe, form) {
    return function () {
      var method = form.dataset.paymentMethod;
      var data = method ? {payment_method: method} : undefined;
      // Whatever the bank answered, the portal learns it from Stripe on the way back.
      return stripe.confirmCardPayment(form.dataset.secret, data).then(function () { return null; });
    };
  }

  var found = document.getElementById("cp-stripe-setup");
  if (found) start(found, setup);
  found = document.getElementById("cp-stripe-authenticate");
  if (found) start(found, authenticate);
})();
