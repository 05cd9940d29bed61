"""The billing history and the invoice page: everything, newest first, and only one's own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import history
from flask_customer_portal import models as m
from flask_customer_portal.db import new_public_id
from flask_customer_portal.urls import link_maker

from .conftest import sign_in_with_link
from .helpers import counting

BILLING = "/portal/billing"
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
LINE = {"description": "Acme Cloud Pro", "unit_amount": 2900}
ROW = re.compile(r'<tr class="cp-history-(invoice|payment|refund)">')
LINKS = re.compile(r'href="/portal/billing/invoices/([^"]+)"')


def history_rows(page: str) -> list[str]:
    return ROW.findall(page)


def link(page: str, rel: str) -> str | None:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', page)
    return match.group(1).replace("&amp;", "&") if match else None


def a_year_of_billing(customer: m.Customer) -> None:
    """Twenty invoices with their payments; failed attempts; refunds: sixty rows in all.

    Invoices and their payments share timestamps, and pairs of invoices share
    theirs, so the tie-breaks of the order are walked too.
    """
    for index in range(20):
        at = START + timedelta(days=10 * (index // 2))
        invoice = portal.issue_invoice(customer, [LINE], currency="USD", issued_at=at)
        if index % 5 == 4:
            portal.record_payment(
                customer,
                invoice=invoice,
                amount=2900,
                currency="USD",
                status="failed",
                failure_reason="Your card was declined.",
                at=at,
            )
            portal.void_invoice(invoice)
            continue
        payment = portal.record_payment(
            customer, invoice=invoice, amount=2900, currency="USD", at=at
        )
        if index % 4 == 1:
            portal.record_refund(payment, amount=900, reason="Goodwill", at=at + timedelta(hours=1))
    # 20 invoices, 16 payments, 4 failed attempts, 4 refunds: 44; and 16 more
    # payments without an invoice, such as one-off charges.
    for index in range(16):
        portal.record_payment(
            customer, amount=500 + index, currency="USD", at=START - timedelta(days=index)
        )


def walk(customer: m.Customer, *, status: str | None = None) -> list[list[str]]:
    """Follow the "Older" cursors from the first page; return each page's public ids."""
    pages, after = [], None
    while True:
        page = history.billing_history(customer, status=status, after=after, limit=25)
        pages.append([entry.public_id for entry in page.entries])
        if page.older is None:
            return pages
        after = page.older


def test_history_lists_invoices_payments_refunds_and_failed_attempts_newest_first(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    invoice = portal.issue_invoice(signed_in, [LINE], currency="USD", issued_at=START)
    payment = portal.record_payment(
        signed_in, invoice=invoice, amount=2900, currency="USD", at=START + timedelta(hours=1)
    )
    portal.record_refund(payment, amount=1000, reason="Goodwill", at=START + timedelta(days=2))
    dues = portal.record_failed_renewal(
        subscription, reason="Your card was declined.", at=START + timedelta(days=31)
    )
    page = client.get(BILLING)
    assert page.status_code == 200
    assert history_rows(page.text) == ["payment", "invoice", "refund", "payment", "invoice"]
    text = page.text
    # Newest first: the failed renewal, its open invoice, the refund, the payment, the invoice.
    order = [
        "Your card was declined.",
        f"Invoice {dues.number}",
        "Goodwill",
        f"Payment for invoice {invoice.number}",
        f"Invoice {invoice.number}",
    ]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    for badge in ("Failed", "Open", "Refunded", "Succeeded", "Paid"):
        assert f">{badge}</span>" in text
    assert "-$10.00" in text and "$29.00" in text
    assert f'href="/portal/billing/invoices/{invoice.public_id}"' in text
    assert f'href="/portal/billing/invoices/{invoice.public_id}.pdf"' in text
    assert f'href="/portal/billing/invoices/{dues.public_id}.pdf"' in text
    assert link(text, "next") is None and link(text, "prev") is None


def test_keyset_pages_walk_every_row_exactly_once_both_ways(
    client: FlaskClient, signed_in: m.Customer
) -> None:
    a_year_of_billing(signed_in)
    pages = walk(signed_in)
    ids = [public_id for page in pages for public_id in page]
    assert [len(page) for page in pages] == [25, 25, 10]
    assert len(ids) == len(set(ids)) == 60
    everything = history.billing_history(signed_in, limit=100).entries
    assert ids == [entry.public_id for entry in everything]
    keys = [(entry.at, entry.kind, entry.public_id) for entry in everything]
    assert keys == sorted(keys, reverse=True)

    # The same walk through the pages' "Older" links, and back through "Newer".
    seen: list[list[str]] = []
    counts: list[int] = []
    url: str | None = BILLING
    while url:
        text = client.get(url).text
        seen.append(LINKS.findall(text))
        counts.append(len(history_rows(text)))
        url = link(text, "next")
    assert counts == [25, 25, 10]
    back = []
    while url := link(text, "prev"):
        text = client.get(url).text
        back.append(LINKS.findall(text))
    assert back == seen[-2::-1]
    assert link(text, "prev") is None and link(text, "next") is not None


def test_the_status_filter_shows_the_right_rows(client: FlaskClient, signed_in: m.Customer) -> None:
    a_year_of_billing(signed_in)
    expected = {"paid": 16 + 32, "failed": 4, "refunded": 4, "void": 4, "open": 0}
    for status, count in expected.items():
        assert sum(map(len, walk(signed_in, status=status))) == count, status
    failed = client.get(BILLING, query_string={"status": "failed"}).text
    assert history_rows(failed) == ["payment"] * 4
    assert '<option value="failed" selected>' in failed
    paid = client.get(BILLING, query_string={"status": "paid"}).text
    older = link(paid, "next")
    assert older is not None and "status=paid" in older
    assert set(history_rows(client.get(older).text)) <= {"invoice", "payment"}
    assert "Nothing matches this filter." in client.get(f"{BILLING}?status=open").text
    assert history_rows(client.get(f"{BILLING}?status=").text) == history_rows(
        client.get(BILLING).text
    )


@pytest.mark.parametrize(
    "query",
    [
        {"status": "everything"},
        {"after": "not-a-cursor"},
        {"after": "WyIyMDI2LTAxLTAxIiwgImludm9pY2UiLCAieCJd"},  # a naive time
        {"after": "WzEsIDIsIDNd"},  # [1, 2, 3]
        {"before": "eyJhIjogMX0"},  # {"a": 1}
        {"after": "ä"},
        {"after": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgWzFdLCAieCJd"},  # a list for the kind
        {"before": "W" * 5000},
    ],
)
def test_a_tampered_query_gets_a_clear_400_never_a_500(
    client: FlaskClient, signed_in: m.Customer, query: dict[str, str]
) -> None:
    """V1: a bad filter or cursor is a clear message, never a server error."""
    page = client.get(BILLING, query_string=query)
    assert page.status_code == 400
    assert "Something was wrong with that request" in page.text
    assert "status to filter by" in page.text or "Start again." in page.text


def add_history(session: Session, customer: m.Customer, numbers: range) -> m.Invoice:
    """Insert paid invoices numbered ``numbers`` with lines, payments and refunds, in bulk."""
    snapshot = {"name": "Acme Cloud"}
    last = None
    for index in numbers:
        at = START + timedelta(hours=index)
        last = m.Invoice(
            public_id=new_public_id("in"),
            **customer.scope,
            customer_id=customer.id,
            number=f"BULK-{index:06d}",
            status="paid",
            currency="USD",
            subtotal=2900,
            tax=0,
            total=2900,
            issued_at=at,
            paid_at=at,
            business_snapshot=snapshot,
            customer_snapshot=customer.snapshot(),
            lines=[
                m.InvoiceLine(position=p, description="Seat", unit_amount=1450, amount=1450)
                for p in (1, 2)
            ],
        )
        payment = m.Payment(
            customer_id=customer.id,
            **customer.scope,
            invoice=last,
            amount=2900,
            currency="USD",
            status="succeeded",
            created_at=at,
        )
        payment.refunds = [
            m.Refund(
                customer_id=customer.id,
                amount=100,
                currency="USD",
                status="succeeded",
                created_at=at,
            )
        ]
        session.add_all([last, payment])
    session.commit()
    assert last is not None
    return last


def test_pages_issue_the_same_statements_for_3_rows_and_for_hundreds(
    app: Flask, client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    """A page costs a fixed number of SQL statements, the 40th page as the first."""
    first = add_history(session, signed_in, range(1))  # an invoice, a payment, a refund
    pages = [BILLING, f"{BILLING}?status=paid", f"/portal/billing/invoices/{first.public_id}"]
    client.get(BILLING)  # the session's first use may write; measure the steady state

    def costs() -> list[int]:
        result = []
        for url in pages:
            with counting(app) as statements:
                assert client.get(url).status_code == 200
            result.append(len(statements))
        return result

    few = costs()
    add_history(session, signed_in, range(1, 121))  # 360 rows more
    many = costs()
    assert few == many
    text = client.get(BILLING).text
    for _ in range(5):
        url = link(text, "next")
        assert url is not None
        with counting(app) as statements:
            text = client.get(url).text
        assert len(statements) == few[0]


def test_the_invoice_page_shows_lines_tax_totals_and_the_frozen_details(
    client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    portal.update_business(
        business, address="Rua Augusta 100\nSão Paulo", tax_id="12.345.678/0001-90"
    )
    invoice = portal.issue_invoice(
        signed_in,
        [LINE, {"description": "Extra seats", "unit_amount": 1000, "quantity": 3}],
        currency="USD",
        tax=590,
        issued_at=START,
        due_at=START + timedelta(days=14),
    )
    portal.record_payment(
        signed_in, invoice=invoice, amount=6490, currency="USD", at=START + timedelta(days=1)
    )
    # Changes after issue never rewrite the invoice.
    portal.upsert_customer(business, signed_in.email, name="Ana Renamed")
    portal.update_business(business, address="Somewhere else")
    page = client.get(f"/portal/billing/invoices/{invoice.public_id}")
    assert page.status_code == 200
    text = page.text
    assert f"Invoice {invoice.number}" in text and ">Paid</span>" in text
    for shown in (
        "Acme Cloud Pro",
        "Extra seats",
        "$10.00",
        "$30.00",
        "$59.00",  # subtotal
        "$5.90",  # tax
        "$64.90",  # total
        "Jan 1, 2026",
        "Jan 15, 2026",
        "Jan 2, 2026",
        "Ana Souza",
        "ana@example.com",
        "Rua Augusta 100<br>São Paulo",
        "Tax ID: 12.345.678/0001-90",
    ):
        assert shown in text, shown
    assert "Ana Renamed" not in text.split("</header>")[1] and "Somewhere else" not in text
    assert f'href="/portal/billing/invoices/{invoice.public_id}.pdf"' in text
    assert "Download PDF" in text


def test_someone_elses_invoice_is_not_found(
    app: Flask, client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    """Z1: another customer's invoice, of this business or another, is a 404, page and PDF."""
    neighbour = portal.upsert_customer(business, "bruno@example.com", name="Bruno")
    other_business = portal.create_business("Globex", public_id="globex")
    stranger = portal.upsert_customer(other_business, "ana@example.com", name="Ana Souza")
    live_self = portal.upsert_customer(business, "ana@example.com", mode="live")
    mine = portal.issue_invoice(signed_in, [LINE], currency="USD")
    for owner in (neighbour, stranger, live_self):
        theirs = portal.issue_invoice(owner, [LINE], currency="USD")
        portal.record_payment(owner, invoice=theirs, amount=2900, currency="USD")
        for url in (
            f"/portal/billing/invoices/{theirs.public_id}",
            f"/portal/billing/invoices/{theirs.public_id}.pdf",
        ):
            response = client.get(url)
            assert response.status_code == 404, url
            assert theirs.number not in response.text
    history = client.get(BILLING).text
    assert history_rows(history) == ["invoice"] and mine.number in history
    assert client.get(f"/portal/billing/invoices/{mine.public_id}").status_code == 200
    assert client.get(f"/portal/billing/invoices/{mine.public_id}.pdf").status_code == 200
    assert client.get("/portal/billing/invoices/in_unknown.pdf").status_code == 404


def test_the_pages_need_a_signed_in_customer(client: FlaskClient, customer: m.Customer) -> None:
    """Z1: signed out, each billing page shows nothing of the invoice and leads to sign-in."""
    invoice = portal.issue_invoice(customer, [LINE], currency="USD")
    for url in (
        BILLING,
        f"{BILLING}/invoices/{invoice.public_id}",
        f"{BILLING}/invoices/{invoice.public_id}.pdf",
    ):
        response = client.get(url)
        assert response.status_code == 302 and invoice.number not in response.text
        assert "/login" in response.location


def test_text_saved_by_anyone_renders_escaped(
    client: FlaskClient, customer: m.Customer, business: m.Business
) -> None:
    """V2: markup in names, addresses, descriptions and reasons is shown as text."""
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    portal.update_business(business, name=f"Acme {payload}", address=payload, tax_id="X<b>1")
    portal.upsert_customer(business, customer.email, name=payload)
    invoice = portal.issue_invoice(
        customer, [{"description": payload, "unit_amount": 100}], currency="USD"
    )
    portal.record_payment(
        customer,
        invoice=invoice,
        amount=100,
        currency="USD",
        status="failed",
        failure_reason=payload,
    )
    sign_in_with_link(client, customer)
    for url in (BILLING, f"{BILLING}/invoices/{invoice.public_id}"):
        text = client.get(url).text
        assert "<script>alert" not in text and "<img src=x" not in text, url
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text, url


def test_an_invoice_pdf_is_never_stored_by_a_cache(
    client: FlaskClient, signed_in: m.Customer
) -> None:
    """T7, Z1: a billing document is sent ``no-store``, so neither the browser nor any cache
    on the way keeps a copy after sign-out. Its ETag names its version: a client that kept
    the file itself asks again with it and gets a 304, without the document."""
    invoice = portal.issue_invoice(signed_in, [LINE], currency="USD")
    url = f"{BILLING}/invoices/{invoice.public_id}.pdf"
    first = client.get(url)
    assert first.status_code == 200 and first.mimetype == "application/pdf"
    assert first.headers["Cache-Control"] == "no-store"
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["Cache-Control"] == "no-store" and again.headers["ETag"] == etag
    other = client.get(url, headers={"If-None-Match": '"an-older-version"'})
    assert other.status_code == 200 and other.data == first.data


@pytest.mark.parametrize("value", ["in_0a1b2c", "a b/c?d#e%f&g", "é€😀", "cp-value-marker"])
def test_the_history_rows_links_are_the_links_url_for_makes(app: Flask, value: str) -> None:
    """The billing rows' cheap links (``link_maker``) are ``url_for``'s, quoting included."""
    with app.test_request_context("/portal/billing"):
        for endpoint in ("customer_portal.invoice", "customer_portal.invoice_pdf"):
            made = link_maker(endpoint, "invoice_id")
            assert made(value) == url_for(endpoint, invoice_id=value)
        with pytest.raises(ValueError, match="does not put"):
            link_maker("customer_portal.billing", "status")
