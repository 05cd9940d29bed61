"""Pages: billing history, invoices and their PDFs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request

from .. import documents, i18n, invoices, signals
from ..errors import ValidationError
from ..history import HISTORY_FILTERS, billing_history, customer_invoice, invoice_payments
from ..models import Invoice
from ..urls import link_maker
from .auth import customer_required, signed_in_customer
from .guard import or_404
from .messages import error_message


def register(blueprint: Blueprint) -> None:
    """Add these pages to ``blueprint``."""
    blueprint.add_url_rule("/billing", "billing", customer_required(history))
    blueprint.add_url_rule(
        "/billing/invoices/<invoice_id>", "invoice", customer_required(invoice_page)
    )
    blueprint.add_url_rule(
        "/billing/invoices/<invoice_id>.pdf", "invoice_pdf", customer_required(invoice_pdf)
    )


def history() -> Any:
    """Every invoice, payment, failed attempt and refund, newest first, a page at a time."""
    status = request.args.get("status") or None
    try:
        page = billing_history(
            signed_in_customer(),
            status=status,
            after=request.args.get("after"),
            before=request.args.get("before"),
        )
    except ValidationError as error:
        abort(400, description=error_message(error))
    return render_template(
        "customer_portal/billing.html",
        page=page,
        status=status,
        filters=HISTORY_FILTERS,
        invoice_url=link_maker("customer_portal.invoice", "invoice_id"),
        invoice_pdf_url=link_maker("customer_portal.invoice_pdf", "invoice_id"),
    )


def invoice_page(invoice_id: str) -> Any:
    """One invoice: its lines, totals, the parties' details and the payments made on it."""
    invoice = _invoice(invoice_id)
    return render_template(
        "customer_portal/invoice.html", invoice=invoice, payments=invoice_payments(invoice)
    )


def invoice_pdf(invoice_id: str) -> Response:
    """Send the invoice's document, kept once rendered; a download sends ``invoice_downloaded``.

    Its ETag is the document's key: a conditional request for the same version
    gets a 304 without the document being read. Nothing stores it on the way
    (``no-store``): a billing document stays out of every cache.
    """
    invoice = _invoice(invoice_id)
    locale = i18n.current_locale()
    key = documents.document_key(invoice, locale=locale)
    if key in request.if_none_match:
        response = Response(status=304)
    else:
        document = documents.invoice_document(invoice, locale=locale, key=key)
        response = Response(document.body, mimetype=document.media_type)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{invoices.filename(invoice)}"'
        )
        if request.method == "GET":
            signals.send(signals.invoice_downloaded, customer=invoice.customer, invoice=invoice)
    response.set_etag(key)
    response.headers["Cache-Control"] = "no-store"
    return response


def _invoice(public_id: str) -> Invoice:
    return or_404(customer_invoice(signed_in_customer(), public_id))
