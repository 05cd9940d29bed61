"""Self-service in a real browser: paying a one-off invoice, the payment-methods page, a deep
link that pays Bruno's dues and returns to the store, and a signed-out bookmark.

Each test gets its own copy of the seeded store (see conftest.py).
"""

from __future__ import annotations

import re
from typing import Any

import flask_customer_portal as portal
from flask_customer_portal import get_business

from ..smtp import link_in
from .conftest import Store, choose_language, enter_card, sign_in
from .test_payment_journeys import add_card


def customer_of(store: Store, email: str) -> Any:
    """The store's customer ``email`` (call inside the store's app context)."""
    business = get_business("acme")
    assert business is not None
    return portal.upsert_customer(business, email)


def one_off_invoice(store: Store, email: str) -> str:
    """Issue ``email`` a $49.00 invoice of no subscription, as the merchant's code would;
    return its number."""
    with store.app.app_context():
        invoice = portal.issue_invoice(
            customer_of(store, email),
            [{"description": "Onboarding session", "unit_amount": 4900}],
            currency="USD",
        )
        return str(invoice.number)


def test_a_one_off_invoice_is_paid_from_its_page(store: Store, page: Any) -> None:
    """Carla has no card: the overview says an invoice is to pay; she adds a card on the
    provider's page from the invoice's payment page, pays, and the invoice reads paid."""
    number = one_off_invoice(store, "carla@example.com")
    sign_in(store, page, "carla@example.com")
    page.get_by_text("1 invoice to pay.").wait_for()
    page.get_by_role("link", name=f"Pay invoice {number} ($49.00)").click()
    page.get_by_role("heading", name=f"Pay invoice {number}").wait_for()
    add_card(page, "4242 4242 4242 4242")
    page.get_by_role("button", name="Pay $49.00").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    page.get_by_text("$49.00 was charged to Visa ending in 4242").wait_for()
    page.get_by_role("link", name=f"See invoice {number}").click()
    page.get_by_text("Paid", exact=True).first.wait_for()
    assert not page.get_by_role("link", name="Pay this invoice").is_visible()
    page.get_by_role("link", name="Overview", exact=True).click()
    page.get_by_role("heading", name=re.compile("Hello")).wait_for()
    assert "invoice to pay" not in page.content()


def test_payment_methods_default_remove_and_the_only_card(store: Store, page: Any) -> None:
    """Ana adds a card, makes it the default and removes her old one; the last card of her
    active subscription cannot be removed, and the page says why."""
    sign_in(store, page, "ana@example.com")
    page.get_by_role("link", name="Payment methods", exact=True).click()
    page.get_by_role("heading", name="Payment methods").wait_for()
    page.get_by_role("button", name="Add a new card").click()
    page.get_by_role("heading", name="Add a card").wait_for()
    enter_card(page, "4000 0000 0000 0002")
    page.get_by_role("button", name="Save this card").click()
    page.get_by_text("Card Visa ending in 0002 added.").wait_for()

    page.get_by_role("button", name="Make Visa ending in 0002 the default").click()
    page.get_by_text("Visa ending in 0002 is now your default card.").wait_for()
    page.get_by_role("button", name="Remove Visa ending in 4242").click()
    page.get_by_text("Card Visa ending in 4242 removed.").wait_for()
    assert page.get_by_role("button", name="Remove Visa ending in 4242").count() == 0
    page.get_by_text("Used by Acme Cloud Pro").wait_for()

    page.get_by_role("button", name="Remove Visa ending in 0002").click()
    page.get_by_role("alert").get_by_text(
        "This is the only card of a current subscription, so it cannot be removed."
    ).wait_for()
    assert page.get_by_role("button", name="Remove Visa ending in 0002").is_visible()


def test_a_deep_link_pays_the_dues_and_returns_to_the_store(store: Store, page: Any) -> None:
    """The store's link for Bruno's on-hold plan opens its payment-method page right after
    sign-in; paying the dues there sends him back to the store's page, the plan active."""
    choose_language(store, "bruno@example.com", "en")
    return_url = f"{store.url}/?from=portal"
    with store.app.app_context():
        bruno = customer_of(store, "bruno@example.com")
        (subscription,) = bruno.subscriptions
        link = portal.create_portal_session(
            bruno,
            flow="update_payment_method",
            subscription_id=subscription.public_id,
            return_url=return_url,
        )
        sub_id = subscription.public_id
    page.goto(link.url)
    page.get_by_role("button", name="Continue to your account").click()
    page.wait_for_url(f"{store.url}/portal/subscriptions/{sub_id}/payment-method")
    add_card(page, "4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile(r"^Confirm changes and pay \$")).click()
    page.wait_for_url(return_url)
    page.goto(f"{store.url}/portal/subscriptions")
    page.get_by_text("Active", exact=True).wait_for()


def test_a_signed_out_bookmark_signs_in_and_comes_back(store: Store, page: Any) -> None:
    """/portal/billing opened signed out → the sign-in page → the emailed link → billing."""
    choose_language(store, "ana@example.com", "en")
    page.goto(f"{store.url}/portal/billing")
    page.get_by_label("Email address").fill("ana@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_text("a link is on its way").wait_for()
    (mail,) = store.smtp.wait_for(1)
    page.goto(link_in(mail.message))
    page.get_by_role("button", name="Continue to your account").click()
    page.wait_for_url(f"{store.url}/portal/billing")
    page.get_by_role("heading", name="Billing").first.wait_for()
