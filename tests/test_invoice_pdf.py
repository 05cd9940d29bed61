"""Invoice PDFs: the right content in any script, nothing injected or fetched, stable bytes."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pypdf import PdfReader
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import ConfigurationError, ReportlabInvoiceRenderer, formatting, signals
from flask_customer_portal import models as m

from .conftest import sign_in_with_link
from .helpers import pdf_text, shown

ISSUED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
LINES = [
    {"description": "Acme Cloud Pro", "unit_amount": 290000},
    {"description": "Extra seats", "unit_amount": 1000, "quantity": 3},
]


def paid_invoice(customer: m.Customer) -> m.Invoice:
    invoice = portal.issue_invoice(
        customer,
        LINES,
        currency="BRL",
        tax=2345,
        issued_at=ISSUED,
        due_at=ISSUED + timedelta(days=10),
    )
    portal.record_payment(
        customer,
        invoice=invoice,
        amount=invoice.total,
        currency="BRL",
        at=ISSUED + timedelta(days=2),
    )
    return invoice


def pdf_url(invoice: m.Invoice) -> str:
    return f"/portal/billing/invoices/{invoice.public_id}.pdf"


def test_the_pdf_holds_the_number_dates_totals_and_parties_in_the_customers_locale(
    client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    portal.update_business(
        business, address="Rua Augusta 100\nSão Paulo - SP", tax_id="12.345.678/0001-90"
    )
    portal.upsert_customer(business, signed_in.email, locale="pt_BR", phone="+55 11 98765-4321")
    invoice = paid_invoice(signed_in)
    response = client.get(pdf_url(invoice))
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    for expected in (
        invoice.number,
        "Acme Cloud",
        "Rua Augusta 100",
        "São Paulo - SP",
        "Identificação fiscal: 12.345.678/0001-90",
        "Ana Souza",
        "ana@example.com",
        "+5511987654321",
        "Acme Cloud Pro",
        "Extra seats",
        formatting.money(290000, "BRL", "pt_BR"),  # R$ 2.900,00
        formatting.money(invoice.subtotal, "BRL", "pt_BR"),
        formatting.money(2345, "BRL", "pt_BR"),
        formatting.money(invoice.total, "BRL", "pt_BR"),
        formatting.date(ISSUED, "pt_BR"),
        formatting.date(invoice.due_at, "pt_BR"),
        formatting.date(invoice.paid_at, "pt_BR"),
        "PAGA",  # the words follow the locale too
    ):
        assert shown(expected) in text, expected
    assert "R$ 2.900,00" in text and "1 de mar. de 2026" in text


@pytest.mark.parametrize(
    ("status", "mark"),
    [("open", "OPEN"), ("void", "VOID"), ("draft", "DRAFT"), ("uncollectible", "UNCOLLECTIBLE")],
)
def test_the_pdf_marks_the_invoices_state(
    client: FlaskClient, signed_in: m.Customer, session: Session, status: str, mark: str
) -> None:
    invoice = portal.issue_invoice(signed_in, LINES, currency="USD")
    invoice.status = status
    session.commit()
    text = pdf_text(client.get(pdf_url(invoice)).data)
    assert mark in text and "PAID" not in text


@pytest.mark.parametrize("name", ["Анна Петрова", "Ελένη Παπαδοπούλου", "João Ñúñez-Çelik"])
def test_names_in_any_script_come_out_as_text(
    client: FlaskClient, signed_in: m.Customer, business: m.Business, name: str
) -> None:
    portal.upsert_customer(business, signed_in.email, name=name)
    portal.update_business(business, name=f"Ακμή {name}")
    invoice = portal.issue_invoice(
        signed_in, [{"description": f"Лицензия для {name}", "unit_amount": 100}], currency="EUR"
    )
    text = pdf_text(client.get(pdf_url(invoice)).data)
    assert name in text
    assert f"Ακμή {name}" in text and f"Лицензия для {name}" in text


def test_markup_in_any_text_renders_literally_and_nothing_is_fetched(
    client: FlaskClient,
    signed_in: m.Customer,
    business: m.Business,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """D2: reportlab markup and remote images in customer or business text are just text,
    and rendering works with every socket refused."""
    font = "<font color=red>X</font>"
    image = '<img src="http://example.com/x.png"/>'
    portal.upsert_customer(business, signed_in.email, name=font)
    portal.update_business(business, name=f"Acme {image}", address=image, logo=a_png())
    invoice = portal.issue_invoice(
        signed_in,
        [{"description": f'{font} <a href="http://example.com">y</a>', "unit_amount": 100}],
        currency="USD",
    )

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("no network in invoice rendering")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(OSError, match="no network"):
        socket.create_connection(("example.com", 80))
    response = client.get(pdf_url(invoice))
    monkeypatch.undo()
    assert response.status_code == 200
    text = " ".join(pdf_text(response.data).split())  # long names wrap onto two lines
    assert font in text
    assert f"Acme {image}" in text
    assert f'{font} <a href="http://example.com">y</a>' in text
    images = PdfReader(io.BytesIO(response.data)).pages[0].images
    assert len(images) == 1  # the stored logo, and nothing else


def a_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 40), (26, 86, 219)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_paid_invoice_downloads_the_same_bytes(
    client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    """D2: a paid invoice's PDF is stable: every download is the same bytes. (It is sent
    ``no-store``, with its version as ETag: see tests/test_billing_pages.py.)"""
    portal.update_business(business, logo=a_png())
    invoice = paid_invoice(signed_in)
    first, second = client.get(pdf_url(invoice)), client.get(pdf_url(invoice))
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    metadata = PdfReader(io.BytesIO(first.data)).metadata
    assert metadata is not None and metadata["/CreationDate"] == "D:20260301100000+00'00'"


def test_the_filename_is_the_sanitised_invoice_number(
    client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    invoice = portal.issue_invoice(signed_in, LINES, currency="USD")
    response = client.get(pdf_url(invoice))
    disposition = f'attachment; filename="invoice-{invoice.number}.pdf"'
    assert response.headers["Content-Disposition"] == disposition
    assert invoice.number == "ACMECL-TEST-000001"
    invoice.number = 'A/../"b"; c\\d é'
    session.commit()
    response = client.get(pdf_url(invoice))
    assert response.headers["Content-Disposition"] == 'attachment; filename="invoice-A-b-c-d.pdf"'


def test_a_download_sends_the_signal(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    invoice = paid_invoice(signed_in)
    received: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        received.append({"sender": sender, **kwargs})

    with signals.invoice_downloaded.connected_to(receiver, app):
        client.get(pdf_url(invoice))
        client.head(pdf_url(invoice))
    assert len(received) == 1  # a HEAD is not a download
    assert received[0]["sender"] is app
    assert received[0]["customer"].id == signed_in.id
    assert received[0]["invoice"].public_id == invoice.public_id


class FakeRenderer:
    """A merchant's own renderer: anything with ``media_type`` and ``render``."""

    media_type = "application/pdf"

    def render(self, invoice: m.Invoice, *, locale: str) -> bytes:
        return b"%PDF-fake " + f"{invoice.number} {locale}".encode()


@pytest.mark.parametrize("renderer", [FakeRenderer, FakeRenderer()], ids=["class", "instance"])
def test_a_merchant_can_replace_the_renderer(
    app_factory: Callable[..., Flask], database_url: str, renderer: Any
) -> None:
    app = app_factory(database_url, portal_options={"invoice_renderer": renderer})
    with app.app_context():
        business = portal.create_business("Acme Cloud", public_id="acme", default_locale="es_MX")
        customer = portal.upsert_customer(business, "ana@example.com")
        invoice = portal.issue_invoice(customer, LINES, currency="EUR")
        client = app.test_client()
        sign_in_with_link(client, customer)
        response = client.get(pdf_url(invoice))
    assert response.status_code == 200
    # The page's locale: the business's default, as the portal's nearest language.
    assert response.data == f"%PDF-fake {invoice.number} es".encode()
    assert (
        response.headers["Content-Disposition"]
        == f'attachment; filename="invoice-{invoice.number}.pdf"'
    )


def test_a_renderer_without_the_interface_is_refused_at_start_up(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    with pytest.raises(ConfigurationError, match="invoice_renderer"):
        app_factory(database_url, portal_options={"invoice_renderer": object()})


def test_a_long_invoice_flows_onto_more_pages(client: FlaskClient, signed_in: m.Customer) -> None:
    lines = [
        {"description": f"Item {i} " + "long words " * 12, "unit_amount": 100} for i in range(60)
    ]
    invoice = portal.issue_invoice(signed_in, lines, currency="USD")
    reader = PdfReader(io.BytesIO(client.get(pdf_url(invoice)).data))
    assert len(reader.pages) > 1
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Item 0 " in text and "Item 59 " in text and "$60.00" in text


class CountingRenderer(ReportlabInvoiceRenderer):
    """The portal's own renderer, counting the documents it draws."""

    def __init__(self) -> None:
        self.drawn: list[tuple[str, str]] = []

    def render(self, invoice: m.Invoice, *, locale: str) -> bytes:
        self.drawn.append((invoice.number, locale))
        return super().render(invoice, locale=locale)


def test_a_document_is_rendered_once_per_version_and_kept(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """A download renders the invoice's document once and keeps it: downloads of the same
    version read it back (the same bytes and ETag, nothing drawn), a conditional one gets a
    304 and sends no signal; paying the invoice, reading in another language, a new logo or
    brand colour is a new version, drawn once in its turn, and the old one stays as it was."""
    renderer = CountingRenderer()
    app = app_factory(database_url, portal_options={"invoice_renderer": renderer})
    downloads: list[str] = []
    with (
        app.app_context(),
        signals.invoice_downloaded.connected_to(
            lambda sender, **kwargs: downloads.append(kwargs["invoice"].public_id), app
        ),
    ):
        business = portal.create_business("Acme Cloud", public_id="acme")
        customer = portal.upsert_customer(business, "ana@example.com")
        invoice = portal.issue_invoice(customer, LINES, currency="EUR")
        client = app.test_client()
        sign_in_with_link(client, customer)
        first, second = client.get(pdf_url(invoice)), client.get(pdf_url(invoice))
        assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
        assert renderer.drawn == [(invoice.number, "en")]
        unchanged = client.get(pdf_url(invoice), headers={"If-None-Match": first.headers["ETag"]})
        assert unchanged.status_code == 304 and renderer.drawn == [(invoice.number, "en")]
        assert len(downloads) == 2, "a 304 is no download"

        portal.record_payment(customer, invoice=invoice, amount=invoice.total, currency="EUR")
        paid = client.get(pdf_url(invoice))
        assert paid.headers["ETag"] != first.headers["ETag"] and "PAID" in pdf_text(paid.data)
        spanish = client.get(pdf_url(invoice), headers={"Accept-Language": "es"})
        assert spanish.headers["ETag"] not in (first.headers["ETag"], paid.headers["ETag"])
        assert renderer.drawn == [
            (invoice.number, "en"),
            (invoice.number, "en"),
            (invoice.number, "es"),
        ]
        stored = app.extensions["customer_portal"].session.scalar(
            sa.select(sa.func.count()).select_from(m.StoredDocument)
        )
        assert stored == 3

        etags = {first.headers["ETag"], paid.headers["ETag"], spanish.headers["ETag"]}
        portal.update_business(business, logo=a_png())
        with_logo = client.get(pdf_url(invoice)).headers["ETag"]
        portal.update_business(business, brand_color="#0e7490")
        recoloured = client.get(pdf_url(invoice)).headers["ETag"]
        assert len(etags | {with_logo, recoloured}) == 5
        assert len(renderer.drawn) == 5
