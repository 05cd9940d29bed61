"""Pages: billing history, invoices and their PDFs."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request

from .. import billing, i18n, invoices, signals
from ..errors import ValidationError
from ..i18n import gettext
from ..models import Invoice
from . import customer_required, signed_in_customer


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
        page = billing.billing_history(
            signed_in_customer(),
            status=status,
            after=request.args.get("after"),
            before=request.args.get("before"),
        )
    except ValidationError as error:
        if error.field == "status":
            abort(
                400,
                description=gettext(
                    "There is no such status to filter by. Choose one from the list."
                ),
            )
        abort(
            400,
            description=gettext("That page of your billing history does not exist. Start again."),
        )
    return render_template(
        "customer_portal/billing.html", page=page, status=status, filters=billing.HISTORY_FILTERS
    )


def invoice_page(invoice_id: str) -> Any:
    """One invoice: its lines, totals, the parties' details and the payments made on it."""
    invoice = _invoice(invoice_id)
    return render_template(
        "customer_portal/invoice.html",
        invoice=invoice,
        payments=billing.invoice_payments(invoice),
    )


def invoice_pdf(invoice_id: str) -> Response:
    """Send the invoice's document, cacheable by ETag; a download sends ``invoice_downloaded``."""
    customer = signed_in_customer()
    invoice = _invoice(invoice_id)
    renderer: invoices.InvoiceRenderer = current_app.extensions["customer_portal"].invoice_renderer
    document = renderer.render(invoice, locale=i18n.current_locale())
    response = Response(document, mimetype=renderer.media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{invoices.filename(invoice)}"'
    # Private (never in a shared cache) and checked with the server on every use.
    response.headers["Cache-Control"] = "private, no-cache"
    response.set_etag(hashlib.sha256(document).hexdigest())
    response.make_conditional(request)
    if response.status_code == 200 and request.method == "GET":
        signals.invoice_downloaded.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            customer=customer,
            invoice=invoice,
        )
    return response


def _invoice(public_id: str) -> Invoice:
    invoice = billing.customer_invoice(signed_in_customer(), public_id)
    if invoice is None:
        abort(404)
    return invoice
