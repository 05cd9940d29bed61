"""Invoice documents: rendered once per version of what they show, then kept.

A document's key is the SHA-256 of everything it shows (the invoice's number,
status, dates, amounts, lines and frozen details, the live business's logo and
brand colour, the reader's language) and of the renderer and the package's
version that drew it. The
same key always means the same bytes, so the key is the download's ETag, a
repeated download reads the stored bytes, and a conditional request is
answered without reading them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .db import utcnow
from .models import Invoice, StoredDocument
from .proxies import portal


@dataclass(frozen=True)
class Document:
    """A rendered document and the key it is kept under."""

    key: str
    media_type: str
    body: bytes


def document_key(invoice: Invoice, *, locale: str) -> str:
    """Return the key of ``invoice``'s document for a reader of ``locale``, without rendering it."""
    renderer = portal.invoice_renderer
    business = invoice.customer.business
    logo = business.logo
    shown = {
        "renderer": f"{type(renderer).__module__}.{type(renderer).__qualname__}",
        "package": _package_version(),
        "locale": locale,
        "invoice": [
            invoice.public_id,
            invoice.number,
            invoice.status,
            invoice.currency,
            invoice.subtotal,
            invoice.tax,
            invoice.total,
            *(moment.isoformat() if moment else None for moment in _dates(invoice)),
        ],
        "lines": [
            [line.position, line.description, line.quantity, line.unit_amount, line.amount]
            for line in invoice.lines
        ],
        "business": invoice.business_snapshot,
        "customer": invoice.customer_snapshot,
        "logo": hashlib.sha256(logo).hexdigest() if logo else None,
        "brand_color": business.brand_color,
    }
    canonical = json.dumps(shown, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def invoice_document(invoice: Invoice, *, locale: str, key: str | None = None) -> Document:
    """Return ``invoice``'s document for ``locale``: the stored one, or rendered and stored now.

    :param key: its :func:`document_key`, when the caller has it already.
    """
    key = key or document_key(invoice, locale=locale)
    session = portal.session
    stored = session.execute(
        select(StoredDocument.media_type, StoredDocument.body).where(StoredDocument.key == key)
    ).first()
    if stored is not None:
        return Document(key, stored.media_type, stored.body)
    renderer = portal.invoice_renderer
    body = renderer.render(invoice, locale=locale)
    session.add(
        StoredDocument(key=key, media_type=renderer.media_type, body=body, created_at=utcnow())
    )
    try:
        session.commit()
    except IntegrityError:
        # Another request stored the same document a moment ago: the same bytes.
        session.rollback()
    return Document(key, renderer.media_type, body)


def _dates(invoice: Invoice) -> tuple[Any, ...]:
    return invoice.issued_at, invoice.due_at, invoice.paid_at


@cache
def _package_version() -> str:
    return version("flask-customer-portal")
