"""Journeys 4, 7 and 8 in a real browser: cancel and undo, the profile, Portuguese on a phone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from babel.support import Translations

import flask_customer_portal

from ..smtp import link_in, wait_until
from .conftest import Store, sign_in

#: The portal's compiled Brazilian Portuguese catalogue (its own domain, ``customer_portal``).
PORTUGUESE = Translations.load(
    str(Path(flask_customer_portal.__file__).parent / "translations"), ["pt_BR"], "customer_portal"
)


def test_cancel_at_period_end_undo_then_cancel_now(store: Store, page: Any) -> None:
    """Journey 4: cancel at the end of the period → undo → cancel now; each step is mailed.
    The example store asks why: a reason of its list, and a comment."""
    sign_in(store, page, "ana@example.com")
    page.get_by_role("link", name="Subscriptions", exact=True).click()
    page.get_by_role("link", name="Cancel subscription").click()
    page.get_by_role("radio", name=re.compile("^At the end of the period")).check()
    reasons = page.get_by_role("group", name="Why are you cancelling?")
    reasons.get_by_role("radio", name="It is too expensive").check()
    page.get_by_label("Anything else you would like to tell us? (optional)").fill("Too dear")
    page.get_by_role("button", name="Cancel subscription").click()
    page.get_by_text(re.compile("Acme Cloud Pro will end on .+ You can undo this")).wait_for()
    assert page.get_by_text(re.compile("^Cancels on")).is_visible()

    page.get_by_role("button", name="Undo").click()
    page.get_by_text("Acme Cloud Pro will continue; nothing else changed.").wait_for()
    assert page.get_by_text(re.compile("^Renews on")).is_visible()

    page.get_by_role("link", name="Cancel subscription").click()
    page.get_by_role("radio", name=re.compile("^Now: access ends immediately")).check()
    page.get_by_role("radio", name="I am not using it enough").check()
    page.get_by_role("button", name="Cancel subscription").click()
    page.get_by_text("Acme Cloud Pro is cancelled.").wait_for()
    past = page.get_by_role("region", name="Past")
    assert past.get_by_text("Acme Cloud").is_visible()
    assert past.get_by_text("Cancelled", exact=True).is_visible()
    assert page.get_by_role("region", name="Current").get_by_text("Acme Cloud").count() == 0
    assert page.get_by_role("link", name="Cancel subscription").count() == 0

    subjects = sorted(received.message["Subject"] for received in store.smtp.wait_for(3))
    assert len(subjects) == 3, subjects
    assert subjects[0] == "Your Acme Cloud Pro subscription continues"
    assert re.fullmatch("Your Acme Cloud Pro subscription ends on .+", subjects[1])
    assert subjects[2] == "Your Acme Cloud Pro subscription is cancelled"


def test_profile_phone_then_email_confirmed_from_the_new_address(store: Store, page: Any) -> None:
    """Journey 7: change the phone; change the email → the mail to the new address → confirm."""
    sign_in(store, page, "ana@example.com")
    page.get_by_role("link", name="Profile", exact=True).click()
    page.get_by_label("Phone").fill("+55 21 3333 4444")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("status").get_by_text("Saved.").wait_for()
    assert page.get_by_label("Phone").input_value() == "+55 21 3333-4444"

    page.get_by_label("Email address").fill("ana.souza@example.org")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("open the link we sent to the new address").wait_for()
    assert page.get_by_label("Email address").input_value() == "ana@example.com"
    mail = wait_until(
        lambda: [m for m in store.smtp.received if m.rcpt_tos == ["ana.souza@example.org"]]
    )
    assert mail, [m.rcpt_tos for m in store.smtp.received]
    assert mail[0].message["Subject"] == "Confirm your new email address for Acme Cloud"

    page.goto(link_in(mail[0].message))
    page.get_by_role("button", name="Confirm my new email").click()
    page.get_by_text("Your email address is now ana.souza@example.org.").wait_for()
    assert page.get_by_label("Email address").input_value() == "ana.souza@example.org"
    page.get_by_role("link", name="Overview", exact=True).click()
    page.get_by_text("Signed in as ana.souza@example.org.").wait_for()


def test_overview_in_portuguese_on_a_phone(store: Store, page: Any) -> None:
    """Journey 8: Ana switches the overview to Brazilian Portuguese on a 375 px wide phone;
    money and dates follow, and nothing scrolls sideways."""
    page.set_viewport_size({"width": 375, "height": 812})
    sign_in(store, page, "ana@example.com")
    page.get_by_label("Language").select_option(label="Português (Brasil)")
    page.get_by_role("button", name="Change language").click()
    page.locator("html[lang='pt-BR']").wait_for(state="attached")
    assert page.url == f"{store.url}/portal/"
    heading = PORTUGUESE.gettext("Latest invoices")
    assert heading != "Latest invoices", "the Brazilian Portuguese catalogue is missing"
    page.get_by_role("heading", name=heading).wait_for()
    plans = page.get_by_role("region", name=PORTUGUESE.gettext("Your subscriptions"))
    # Money and dates as Brazilians write them: R$ 1.234,56 and 25 de nov. de 2026.
    assert plans.get_by_text(re.compile(r"US\$\s29,00")).first.is_visible()
    assert plans.get_by_text(re.compile(r"\b\d{1,2} de [a-zç]{3,4}\. de \d{4}\b")).is_visible()
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"the overview is {scroll} px wide on a {inner} px screen"
