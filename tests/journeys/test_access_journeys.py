"""Journeys 1 to 3 in a real browser: sign in by email, by a dynamic link, read invoices."""

from __future__ import annotations

import re
from typing import Any

from ..smtp import link_in
from .conftest import Store, choose_language, sign_in


def test_static_link_email_then_overview(store: Store, page: Any) -> None:
    """Journey 1: static link → type the email → read the mail → open the link → overview."""
    choose_language(store, "ana@example.com", "en")
    page.goto(f"{store.url}/portal/test/login/acme")
    page.get_by_label("Email address").fill("ana@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_text("a link is on its way").wait_for()
    (mail,) = store.smtp.wait_for(1)
    page.goto(link_in(mail.message))
    page.get_by_role("button", name="Continue to your account").click()
    page.get_by_role("heading", name=re.compile("Hello, Ana Souza")).wait_for()
    assert page.url == f"{store.url}/portal/"
    assert "Test mode" in page.content()


def test_dynamic_link_works_once(store: Store, page: Any) -> None:
    """Journey 2: a dynamic link from the CLI, then the same link again → ask for a new one."""
    choose_language(store, "ana@example.com", "en")
    result = store.app.test_cli_runner().invoke(
        args=["portal", "invite", "ana@example.com", "--business", "acme", "--json"]
    )
    assert result.exit_code == 0, result.output
    link = re.search(r'"dynamic_link": "([^"]+)"', result.output)
    assert link is not None
    page.goto(link[1])
    page.get_by_role("button", name="Continue to your account").click()
    page.get_by_role("heading", name=re.compile("Hello")).wait_for()
    page.goto(link[1])
    page.get_by_role("heading", name="This link has expired or was already used").wait_for()
    page.get_by_label("Email address").fill("ana@example.com")
    page.get_by_role("button", name="Email me a new link").click()
    page.get_by_text("a link is on its way").wait_for()
    assert store.smtp.wait_for(1)[0].rcpt_tos == ["ana@example.com"]


def test_billing_history_invoice_and_pdf(store: Store, page: Any) -> None:
    """Journey 3: billing history → invoice detail → download the PDF."""
    sign_in(store, page, "ana@example.com")
    page.get_by_role("link", name="Billing", exact=True).click()
    page.get_by_role("link", name=re.compile(r"ACME-TEST-\d{6}")).first.click()
    number = re.search(r"ACME-TEST-\d{6}", page.content())
    assert number is not None
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download PDF")).click()
    pdf = download.value
    assert pdf.suggested_filename == f"invoice-{number[0]}.pdf"
    assert pdf.path().read_bytes().startswith(b"%PDF-")
