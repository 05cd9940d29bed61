"""The test provider's own pages: the card page and the 3-D Secure style challenge.

They stand for pages a real provider hosts on its own site, so they are a
blueprint of their own (``customer_portal_test_provider``, mounted at
``<URL_PREFIX>/test-provider``), outside the portal's guard against card
numbers in forms: this is the one form that takes them (test cards only). They
serve the app's test provider; no sign-in, the random ids in the URLs are the
credentials, as on a provider's hosted page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request

from ..i18n import translated
from ..providers.test import TEST_CARDS, CardError, TestProvider
from ..proxies import portal
from .guard import guarded_blueprint, or_404


def blueprint() -> Blueprint:
    """Build the test provider's pages, with the portal's CSRF check and security headers."""
    pages = guarded_blueprint("customer_portal_test_provider", refuse_card_numbers=False)
    pages.add_url_rule("/setup/<setup_id>", "setup", setup, methods=["GET", "POST"])
    pages.add_url_rule("/challenge/<charge_id>", "challenge", challenge, methods=["GET", "POST"])
    return pages


def _provider() -> TestProvider:
    provider = portal.test_provider
    if not isinstance(provider, TestProvider):
        abort(404)
    return provider


def setup(setup_id: str) -> Any:
    """Show the card page; on a valid test card save it and return to the portal."""
    provider = _provider()
    card_setup = provider.get_setup(setup_id)
    if card_setup is None or card_setup.card is not None:
        abort(404)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            return_url = provider.save_card(
                setup_id,
                number=request.form.get("number", ""),
                expiry=request.form.get("expiry", ""),
                cvc=request.form.get("cvc", ""),
            )
        except CardError as error:
            errors[error.field] = translated(error.message)
        except KeyError:
            abort(404)
        else:
            return redirect(return_url, 303)
    # The number is never sent back: the customer types it again.
    body = render_template(
        "customer_portal/test_provider/setup.html",
        setup=card_setup,
        cards=[(_grouped(number), translated(label)) for number, (_, label) in TEST_CARDS.items()],
        errors=errors,
        expiry=request.form.get("expiry", "") if "expiry" not in errors else "",
    )
    return body, 400 if errors else 200


def _grouped(number: str) -> str:
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def challenge(charge_id: str) -> Any:
    """Show the bank's challenge; Approve or Fail decides the charge, then back to the portal."""
    provider = _provider()
    charge = or_404(provider.get_challenge(charge_id))
    if request.method == "POST":
        decision = request.form.get("decision")
        if decision not in ("approve", "fail"):
            abort(400)
        return redirect(provider.answer_challenge(charge_id, approve=decision == "approve"), 303)
    return render_template("customer_portal/test_provider/challenge.html", charge=charge)
