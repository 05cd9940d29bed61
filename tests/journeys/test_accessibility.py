"""Every page a customer sees, checked by axe-core and at a phone's width; a keyboard-only sign-in.

Each page is checked twice: axe on a desktop in light mode, then axe at 360 px
in dark mode (the default colour scheme follows the device), where the page
must not scroll sideways either. A violation of impact "serious" or "critical"
fails the test, with the rule and the elements it found.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ..conftest import IN_CI
from ..smtp import link_in, wait_until
from .conftest import Store, choose_language, enter_card, sign_in
from .test_self_service_journeys import one_off_invoice

try:
    from axe_playwright_python.sync_playwright import Axe
except ImportError:
    if IN_CI:
        raise
    pytest.skip("axe-playwright-python is not installed", allow_module_level=True)

BLOCKING = ("serious", "critical")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}


class Audit:
    """The accessibility problems found on the pages checked so far."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.axe = Axe()
        self.problems: list[str] = []

    def check(self, name: str) -> None:
        """Check the page as it is once loaded, as ``name``."""
        self.page.wait_for_load_state()
        self._axe(f"{name} (light)")
        self.page.set_viewport_size(PHONE)
        self.page.emulate_media(color_scheme="dark")
        try:
            self._axe(f"{name} (dark, 360 px)")
            scroll, inner = self.page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            if scroll > inner:
                self.problems.append(f"{name}: scrolls sideways at 360 px ({scroll} px wide)")
        finally:
            self.page.emulate_media(color_scheme="light")
            self.page.set_viewport_size(DESKTOP)

    def _axe(self, name: str) -> None:
        for violation in self.axe.run(self.page).response["violations"]:
            if violation["impact"] in BLOCKING:
                nodes = "".join(
                    f"\n    {', '.join(node['target'])}: {node['failureSummary']}"
                    for node in violation["nodes"]
                )
                self.problems.append(
                    f"{name} {self.page.url}: {violation['id']} ({violation['impact']}){nodes}"
                )

    def report(self) -> str:
        """Return the problems, one a paragraph, for the assertion message."""
        return "\n".join(self.problems)


def test_signed_out_pages(store: Store, page: Any) -> None:
    """The login page (empty and with an error), login sent, continue and link expired."""
    choose_language(store, "ana@example.com", "en")
    audit = Audit(page)
    page.goto(f"{store.url}/portal/test/login/acme")
    audit.check("login")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_text("Enter the email address you used when you bought.").wait_for()
    audit.check("login with an error")
    page.get_by_label("Email address").fill("ana@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_text("a link is on its way").wait_for()
    audit.check("login sent")
    link = link_in(store.smtp.wait_for(1)[0].message)
    page.goto(link)
    audit.check("continue")
    page.get_by_role("button", name="Continue to your account").click()
    page.wait_for_url(f"{store.url}/portal/")
    page.goto(link)
    page.get_by_role("heading", name="This link has expired or was already used").wait_for()
    audit.check("link expired")
    assert not audit.problems, audit.report()


def test_account_pages(store: Store, page: Any) -> None:
    """Ana's pages: overview, billing, an invoice, subscriptions, cancelling, payment
    method, license keys, profile, confirming a new email, and a page that is not there."""
    audit = Audit(page)
    sign_in(store, page, "ana@example.com")
    audit.check("overview")
    page.get_by_role("link", name="Billing", exact=True).click()
    audit.check("billing")
    page.get_by_role("link", name=re.compile(r"ACME-TEST-\d{6}")).first.click()
    page.get_by_role("link", name="Download PDF").wait_for()
    audit.check("invoice")
    page.goto(f"{page.url}-not-there")
    page.get_by_role("heading", name="Not found").wait_for()
    audit.check("error 404")
    page.get_by_role("link", name="Subscriptions", exact=True).click()
    audit.check("subscriptions")
    page.get_by_role("link", name="Cancel subscription").click()
    page.get_by_role("group", name="When should it end?").wait_for()
    audit.check("cancel confirmation")
    page.get_by_role("link", name="Subscriptions", exact=True).click()
    page.get_by_role("link", name=re.compile("^Edit the payment method")).click()
    audit.check("payment method")
    page.get_by_role("link", name="License keys", exact=True).click()
    audit.check("license keys")
    page.get_by_role("link", name="Profile", exact=True).click()
    audit.check("profile")
    page.get_by_label("Email address").fill("ana@example")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("alert").wait_for()
    audit.check("profile with an error")
    page.get_by_label("Email address").fill("ana.souza@example.org")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("open the link we sent to the new address").wait_for()
    audit.check("profile saved")
    confirmation = wait_until(
        lambda: [m for m in store.smtp.received if m.rcpt_tos == ["ana.souza@example.org"]]
    )
    assert confirmation, "no confirmation mail reached the new address"
    page.goto(link_in(confirmation[0].message))
    audit.check("confirm email")
    assert not audit.problems, audit.report()


def test_cancelled_customer_pages(store: Store, page: Any) -> None:
    """Carla's overview, subscriptions and billing: a cancelled subscription, past invoices."""
    audit = Audit(page)
    sign_in(store, page, "carla@example.com")
    audit.check("overview, cancelled")
    page.get_by_role("link", name="Subscriptions", exact=True).click()
    audit.check("subscriptions, cancelled")
    page.get_by_role("link", name="Billing", exact=True).click()
    audit.check("billing, cancelled")
    assert not audit.problems, audit.report()


def test_payment_pages(store: Store, page: Any) -> None:
    """Bruno's on-hold overview, subscriptions, billing (failed payments, open invoices) and
    payment method page, the test provider's card page (empty and with errors), the page
    that saves the card, the challenge page, and the payment result."""
    audit = Audit(page)
    sign_in(store, page, "bruno@example.com")
    audit.check("overview, on hold")
    page.get_by_role("link", name="Billing", exact=True).click()
    audit.check("billing, on hold")
    page.get_by_role("link", name="Subscriptions", exact=True).click()
    audit.check("subscriptions, on hold")
    page.get_by_role("link", name="Edit the payment method of Acme Cloud").click()
    audit.check("payment method, on hold")
    page.get_by_role("button", name="Add a new card").click()
    audit.check("card page")
    page.get_by_role("button", name="Save card").click()
    page.get_by_role("alert").wait_for()
    audit.check("card page with errors")
    enter_card(page, "4000 0027 6000 3184")
    audit.check("card added, back at the portal")
    page.get_by_role("button", name="Save this card").click()
    page.get_by_role("button", name=re.compile("^Confirm changes")).click()
    page.get_by_role("heading", name="Confirm the payment").wait_for()
    audit.check("challenge")
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    audit.check("payment result")
    assert not audit.problems, audit.report()


def test_self_service_pages(store: Store, page: Any) -> None:
    """Ana's overview with an invoice to pay, the page that pays it (as it is, and with a
    refused payment), the payment-methods page (as it is, refusing to remove the only card,
    with a card added on the provider's page), and the invoice's payment result."""
    audit = Audit(page)
    number = one_off_invoice(store, "ana@example.com")
    sign_in(store, page, "ana@example.com")
    audit.check("overview, an invoice to pay")
    page.get_by_role("link", name=f"Pay invoice {number} ($49.00)").click()
    page.get_by_role("heading", name=f"Pay invoice {number}").wait_for()
    audit.check("pay invoice")
    page.get_by_role("link", name="Payment methods", exact=True).click()
    audit.check("payment methods")
    page.get_by_role("button", name="Remove Visa ending in 4242").click()
    page.get_by_role("alert").wait_for()
    audit.check("payment methods, the only card refused")
    page.get_by_role("button", name="Add a new card").click()
    enter_card(page, "4000 0027 6000 3184")
    audit.check("saved card, back at the portal")
    page.get_by_role("button", name="Save this card").click()
    page.get_by_text("Card Visa ending in 3184 added.").wait_for()
    audit.check("payment methods, a card added")
    page.goto(f"{store.url}/portal/")
    page.get_by_role("link", name=f"Pay invoice {number} ($49.00)").click()
    page.get_by_role("button", name="Pay $49.00").click()  # the seed's card is never charged
    page.get_by_role("alert").wait_for()
    audit.check("pay invoice, the payment refused")
    page.get_by_role("radio", name=re.compile("Visa ending in 3184")).check()
    page.get_by_role("button", name="Pay $49.00").click()
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    audit.check("invoice payment result")
    assert not audit.problems, audit.report()


def test_keyboard_only_sign_in(store: Store, page: Any) -> None:
    """Tab from the top of the login page: first the skip link, shown when focused, then on
    to the email field, with a visible focus ring; typing and Enter send the form."""
    page.goto(f"{store.url}/portal/test/login/acme")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("link => link === document.activeElement"), "Tab skips the skip link"
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0, "the focused skip link is hidden"
    email = page.get_by_label("Email address")
    for _ in range(5):
        page.keyboard.press("Tab")
        if email.evaluate("field => field === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reaches the email field")
    assert email.evaluate("field => getComputedStyle(field).outlineStyle") != "none"
    page.keyboard.type("ana@example.com")
    page.keyboard.press("Enter")
    page.get_by_text("a link is on its way").wait_for()
    assert store.smtp.wait_for(1)[0].rcpt_tos == ["ana@example.com"]


@pytest.mark.parametrize("language", ["pt_BR", "es"])
def test_pages_in_other_languages(store: Store, page: Any, language: str) -> None:
    """The signed-out pages (for the browser's language) and every page of Ana's (in her
    saved language) in Brazilian Portuguese and in Spanish."""
    audit = Audit(page)
    page.set_extra_http_headers({"Accept-Language": language.replace("_", "-")})
    page.goto(f"{store.url}/portal/test/login/acme")
    audit.check(f"login, {language}")
    page.goto(f"{store.url}/portal/test/login/acme/not-a-token")
    audit.check(f"link expired, {language}")
    page.set_extra_http_headers({})
    sign_in(store, page, "ana@example.com", language=language)
    for path in ("", "billing", "subscriptions", "license-keys", "profile", "nothing-here"):
        page.goto(f"{store.url}/portal/{path}")
        audit.check(f"/portal/{path}, {language}")
    # The pages reached through links: an invoice, cancelling, the payment method.
    page.goto(f"{store.url}/portal/billing")
    invoice = page.locator("a[href*='/portal/billing/invoices/']").first.get_attribute("href")
    page.goto(f"{store.url}/portal/subscriptions")
    cancel = page.locator("a[href$='/cancel']").first.get_attribute("href")
    method = page.locator("a[href$='/payment-method']").first.get_attribute("href")
    for path in (invoice, cancel, method):
        assert path
        page.goto(f"{store.url}{path}")
        audit.check(f"{path}, {language}")
    assert not audit.problems, audit.report()
