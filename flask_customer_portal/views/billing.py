"""Pages: billing history, invoices and their PDFs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request

from .. import i18n, invoices, signals
from ..errors import ValidationError
from ..history import HISTORY_FILTERS, billing_history, customer_invoice, invoice_payments
from ..models import Invoice
from ..proxies import portal
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
        "customer_portal/billing.html", page=page, status=status, filters=HISTORY_FILTERS
    )


def invoice_page(invoice_id: str) -> Any:
    """One invoice: its lines, totals, the parties' details and the payments made on it."""
    invoice = _invoice(invoice_id)
    return render_template(
        "customer_portal/invoice.html", invoice=invoice, payments=invoice_payments(invoice)
    )


def invoice_pdf(invoice_id: str) -> Response:
    """Send the invoice's document, never stored by a cache; a GET sends ``invoice_downloaded``."""
    invoice = _invoice(invoice_id)
    renderer = portal.invoice_renderer
    document = renderer.render(invoice, locale=i18n.current_locale())
    response = Response(document, mimetype=renderer.media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{invoices.filename(invoice)}"'
    # A billing document stays in no cache, the browser's included, once it is sent.
    # No ETag either: with no stored copy there is nothing to revalidate, and the
    # document is rendered before any answer, so a 304 would save no work.
    response.headers["Cache-Control"] = "no-store"
    if request.method == "GET":
        signals.send(signals.invoice_downloaded, customer=invoice.customer, invoice=invoice)
    return response


def _invoice(public_id: str) -> Invoice:
    return or_404(customer_invoice(signed_in_customer(), public_id))
