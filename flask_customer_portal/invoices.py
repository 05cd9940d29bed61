"""Invoice documents: the renderer interface and the reportlab PDF renderer.

A merchant replaces the renderer with ``CustomerPortal(app, invoice_renderer=...)``:
an instance, or a class built with no arguments, that has a ``media_type`` and
a ``render(invoice, *, locale)`` returning the document's bytes. The portal
sends those bytes as ``invoice-<number>.pdf`` with an ETag of their hash, so a
renderer should give the same bytes for the same invoice.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from flask_babel import force_locale
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from . import formatting
from .errors import ConfigurationError
from .i18n import N_, gettext
from .models import Invoice

FONTS = Path(__file__).parent / "fonts"


@runtime_checkable
class InvoiceRenderer(Protocol):
    """What turns an invoice into a downloadable document.

    ``render`` is given the invoice (with its lines, frozen ``business_snapshot``
    and ``customer_snapshot``; ``invoice.customer.business`` is the live
    business, for its logo) and the locale to format money and dates in. It
    must not fetch anything remote and should return the same bytes every time
    for an unchanged invoice.
    """

    #: The document's media type, such as ``"application/pdf"``.
    media_type: str

    def render(self, invoice: Invoice, *, locale: str) -> bytes:
        """Return the document of ``invoice`` for a reader of ``locale``."""
        ...


def make_renderer(renderer: Any) -> InvoiceRenderer:
    """Return the renderer ``CustomerPortal(invoice_renderer=...)`` asks for.

    ``None`` is the reportlab renderer; a class is built with no arguments.
    """
    if renderer is None:
        return ReportlabInvoiceRenderer()
    if isinstance(renderer, type):
        renderer = renderer()
    if not isinstance(renderer, InvoiceRenderer):
        raise ConfigurationError(
            "invoice_renderer needs a media_type attribute and a render(invoice, *, locale) method"
        )
    return renderer


def filename(invoice: Invoice) -> str:
    """Return the download name ``invoice-<number>.pdf``, safe in any header or file system."""
    number = re.sub(r"[^A-Za-z0-9-]+", "-", invoice.number).strip("-")
    return f"invoice-{number or 'document'}.pdf"


#: The mark printed on an invoice for each status (translated when drawn), with its colour.
STATUS_MARKS = {
    "paid": (N_("PAID"), colors.HexColor("#116329")),
    "open": (N_("OPEN"), colors.HexColor("#9a4d00")),
    "void": (N_("VOID"), colors.HexColor("#57606a")),
    "draft": (N_("DRAFT"), colors.HexColor("#57606a")),
    "uncollectible": (N_("UNCOLLECTIBLE"), colors.HexColor("#b42318")),
}


class ReportlabInvoiceRenderer:
    """The default renderer: an A4 PDF drawn with reportlab.

    Every text is drawn with ``drawString``, which prints characters as they
    are (no markup is interpreted, D2), in the shipped DejaVu Sans so any
    script renders. The logo comes from the business's stored bytes only.
    The document's dates are the invoice's issue date, so the bytes depend on
    the invoice (and the locale, of its words, money and dates) alone.
    """

    media_type = "application/pdf"

    def render(self, invoice: Invoice, *, locale: str) -> bytes:
        """Return the PDF of ``invoice`` with money and dates formatted for ``locale``."""
        buffer = io.BytesIO()
        canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1)
        issued = invoice.issued_at.strftime("D:%Y%m%d%H%M%S+00'00'")
        canvas.setDateFormatter(lambda *_: issued)
        business = invoice.business_snapshot
        with force_locale(locale):
            title = gettext("Invoice %(number)s", number=invoice.number)
            canvas.setTitle(title)
            canvas.setAuthor(business.get("name") or "")
            canvas.setCreator("flask-customer-portal")
            canvas.setSubject(title)
            _Page(canvas, invoice, locale).draw()
        canvas.save()
        return buffer.getvalue()


@cache
def _fonts() -> tuple[str, str]:
    # Registered once per process; reportlab keeps per-document state apart.
    regular, bold = "CustomerPortalSans", "CustomerPortalSans-Bold"
    pdfmetrics.registerFont(TTFont(regular, str(FONTS / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(bold, str(FONTS / "DejaVuSans-Bold.ttf")))
    return regular, bold


_WIDTH, _HEIGHT = A4
_MARGIN = 18 * mm
_RIGHT = _WIDTH - _MARGIN
_TOP = _HEIGHT - _MARGIN
_LOGO_BOX = (45 * mm, 18 * mm)
# Right edges of the quantity, unit price and amount columns of the lines table.
_COLUMNS = (_RIGHT - 70 * mm, _RIGHT - 35 * mm, _RIGHT)
_DESCRIPTION_WIDTH = _COLUMNS[0] - 18 * mm - _MARGIN
# The business and customer details stay clear of the number, dates and mark.
_TEXT_WIDTH = 100 * mm


class _Page:
    """Draws one invoice top to bottom, starting a new page when one fills up.

    ``y`` is the top of what comes next; text is drawn on a baseline below it.
    """

    def __init__(self, canvas: Canvas, invoice: Invoice, locale: str) -> None:
        self.canvas, self.invoice, self.locale = canvas, invoice, locale
        self.regular, self.bold = _fonts()
        self.y = _TOP

    def money(self, amount: int) -> str:
        return formatting.money(amount, self.invoice.currency, self.locale)

    def draw(self) -> None:
        invoice = self.invoice
        business, customer = invoice.business_snapshot, invoice.customer_snapshot
        self.logo()
        self.text(business.get("name") or "", bold=True, size=15)
        self.lines(
            [
                *_split(business.get("address")),
                _labelled(gettext("Tax ID"), business.get("tax_id")),
                business.get("support_email"),
            ]
        )
        below_business, self.y = self.y, _TOP
        self.text(gettext("INVOICE"), bold=True, size=18, right=True)
        self.text(invoice.number, size=11, right=True)
        self.y -= 2 * mm
        for label, moment in (
            (gettext("Issued"), invoice.issued_at),
            (gettext("Due"), invoice.due_at),
            (gettext("Paid"), invoice.paid_at),
        ):
            if moment is not None:
                self.text(_labelled(label, formatting.date(moment, self.locale)) or "", right=True)
        self.mark()
        self.y = min(self.y, below_business) - 8 * mm
        self.text(gettext("Bill to"), bold=True)
        self.lines([customer.get("name"), customer.get("email"), customer.get("phone")])
        self.y -= 8 * mm
        self.table()
        self.totals()
        self.canvas.showPage()

    def logo(self) -> None:
        logo = self.invoice.customer.business.logo
        if not logo:
            return
        try:
            image = ImageReader(io.BytesIO(logo))
            width, height = image.getSize()
        except (OSError, ValueError):
            return  # an unreadable logo must not make the invoice undownloadable
        scale = min(_LOGO_BOX[0] / width, _LOGO_BOX[1] / height, 1)
        drawn_width, drawn_height = width * scale, height * scale
        self.canvas.drawImage(
            image, _MARGIN, self.y - drawn_height, drawn_width, drawn_height, mask="auto"
        )
        self.y -= drawn_height + 4 * mm

    def mark(self) -> None:
        mark, colour = STATUS_MARKS[self.invoice.status]
        label = gettext(mark)
        width, height = pdfmetrics.stringWidth(label, self.bold, 16) + 6 * mm, 9 * mm
        self.y -= 3 * mm
        canvas = self.canvas
        canvas.saveState()
        canvas.setStrokeColor(colour)
        canvas.setFillColor(colour)
        canvas.setLineWidth(2)
        canvas.roundRect(_RIGHT - width, self.y - height, width, height, 2 * mm)
        canvas.setFont(self.bold, 16)
        canvas.drawRightString(_RIGHT - 3 * mm, self.y - 6.5 * mm, label)
        canvas.restoreState()
        self.y -= height

    def table(self) -> None:
        self.table_header()
        canvas = self.canvas
        for line in self.invoice.lines:
            description = simpleSplit(line.description, self.regular, 10, _DESCRIPTION_WIDTH)
            self.room(len(description) * _leading(10) + 2 * mm, header=True)
            baseline = self.y - 10
            canvas.setFont(self.regular, 10)
            canvas.drawRightString(_COLUMNS[0], baseline, str(line.quantity))
            canvas.drawRightString(_COLUMNS[1], baseline, self.money(line.unit_amount))
            canvas.drawRightString(_COLUMNS[2], baseline, self.money(line.amount))
            for part in description:
                canvas.drawString(_MARGIN, baseline, part)
                baseline -= _leading(10)
            self.y -= len(description) * _leading(10) + 2 * mm
        self.rule()

    def table_header(self) -> None:
        self.room(_leading(10) * 3)
        canvas, baseline = self.canvas, self.y - 10
        canvas.setFont(self.bold, 10)
        canvas.drawString(_MARGIN, baseline, gettext("Description"))
        labels = (gettext("Qty"), gettext("Unit price"), gettext("Amount"))
        for right, label in zip(_COLUMNS, labels, strict=True):
            canvas.drawRightString(right, baseline, label)
        self.y -= _leading(10)
        self.rule()
        self.y -= 2 * mm

    def totals(self) -> None:
        invoice = self.invoice
        rows = [
            (gettext("Subtotal"), invoice.subtotal, self.regular, 10),
            (gettext("Tax"), invoice.tax, self.regular, 10),
            (
                gettext("Total (%(currency)s)", currency=invoice.currency),
                invoice.total,
                self.bold,
                12,
            ),
        ]
        self.room(sum(_leading(size) for *_, size in rows) + 3 * mm)
        self.y -= 3 * mm
        for label, amount, font, size in rows:
            self.canvas.setFont(font, size)
            self.canvas.drawRightString(_COLUMNS[1], self.y - size, label)
            self.canvas.drawRightString(_COLUMNS[2], self.y - size, self.money(amount))
            self.y -= _leading(size)

    def text(
        self, value: str, *, bold: bool = False, size: float = 10, right: bool = False
    ) -> None:
        """Draw ``value`` literally, wrapped to the left column (or flush right), and move down."""
        font = self.bold if bold else self.regular
        for line in [value] if right else simpleSplit(value, font, size, _TEXT_WIDTH):
            self.room(_leading(size))
            self.canvas.setFont(font, size)
            if right:
                self.canvas.drawRightString(_RIGHT, self.y - size, line)
            else:
                self.canvas.drawString(_MARGIN, self.y - size, line)
            self.y -= _leading(size)

    def lines(self, values: Sequence[str | None]) -> None:
        for value in values:
            if value:
                self.text(value)

    def rule(self) -> None:
        self.canvas.setStrokeColor(colors.HexColor("#d0d7de"))
        self.canvas.line(_MARGIN, self.y, _RIGHT, self.y)
        self.canvas.setStrokeColor(colors.black)

    def room(self, height: float, *, header: bool = False) -> None:
        """Start a new page when ``height`` no longer fits (repeating the table's header)."""
        if self.y - height >= _MARGIN:
            return
        self.canvas.showPage()
        self.y = _TOP
        if header:
            self.table_header()


def _leading(size: float) -> float:
    return size * 1.45


def _split(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _labelled(label: str, value: str | None) -> str | None:
    return gettext("%(label)s: %(value)s", label=label, value=value) if value else None
