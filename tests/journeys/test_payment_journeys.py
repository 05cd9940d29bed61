"""Journeys 5 and 6 in a real browser: Bruno pays his dues on the test provider's pages.

Bruno's Acme Cloud Starter is on hold with two open invoices in the seed; each
test gets its own copy of the seeded store.
"""

from __future__ import annotations

import re
from typing import Any

from .conftest import Store, enter_card, sign_in


def add_card(page: Any, number: str) -> None:
    """From the payment method page, add ``number`` on the provider's card page and come back."""
    page.get_by_role("button", name="Add a new card").click()
    page.get_by_role("heading", name="Add a card").wait_for()
    enter_card(page, number)
    page.get_by_role("button", name="Save this card").click()
    page.get_by_text(f"Card Visa ending in {number[-4:]} added.").wait_for()


def test_declined_card_then_good_card_reactivates(store: Store, page: Any) -> None:
    """Journey 5: a declined card leaves the subscription on hold; a good one pays and
    reactivates it, with a new paid invoice in the history and two emails."""
    sign_in(store, page, "bruno@example.com")
    page.get_by_role("link", name="Subscriptions", exact=True).click()
    page.get_by_role("link", name="Edit the payment method of Acme Cloud").click()
    add_card(page, "4000 0000 0000 0002")
    page.get_by_role("button", name="Confirm changes and pay $18.00").click()
    alert = page.get_by_role("alert")
    alert.get_by_text(re.compile("Your card was declined")).wait_for()
    assert "still on hold" in alert.inner_text()
    assert page.get_by_text("On hold", exact=True).is_visible()

    add_card(page, "4242 4242 4242 4242")
    assert page.get_by_role("radio", name=re.compile("Visa ending in 4242")).is_checked()
    page.get_by_role("button", name="Confirm changes and pay $18.00").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    page.get_by_text("Acme Cloud Starter is active again.").wait_for()
    invoice = page.get_by_role("link", name=re.compile(r"^See invoice ACME-TEST-\d{6}$"))
    number = invoice.inner_text().removeprefix("See invoice ")

    page.get_by_role("link", name="Billing", exact=True).click()
    row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name=f"Invoice {number}", exact=True)
    )
    row.get_by_text("Paid", exact=True).wait_for()
    assert row.get_by_text("$18.00").is_visible()
    page.get_by_role("link", name="Subscriptions", exact=True).click()
    page.get_by_text("Active", exact=True).wait_for()

    mail = store.smtp.wait_for(2)
    assert [m.rcpt_tos for m in mail] == [["bruno@example.com"]] * 2
    assert sorted(m.message["Subject"] for m in mail) == [
        "Payment received: $18.00",
        "Your Acme Cloud Starter subscription is active again",
    ]


def test_3d_secure_card_challenge_approved_reactivates(store: Store, page: Any) -> None:
    """Journey 6: a card that needs the bank's confirmation → the challenge → Approve → active."""
    sign_in(store, page, "bruno@example.com")
    page.get_by_role("link", name="Update payment method").click()
    add_card(page, "4000 0027 6000 3184")
    page.get_by_role("button", name=re.compile("^Confirm changes and pay")).click()
    page.get_by_role("heading", name="Confirm the payment").wait_for()
    assert page.url.startswith(f"{store.url}/portal/test-provider/challenge/")
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    assert page.url.startswith(f"{store.url}/portal/payments/")
    page.get_by_text("Acme Cloud Starter is active again.").wait_for()
    page.get_by_role("link", name="Your subscriptions").click()
    page.get_by_text("Active", exact=True).wait_for()
