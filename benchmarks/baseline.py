"""The baseline: each measured page's essential work in bare Flask and Flask-SQLAlchemy.

The denominator of every figure of the benchmark. Served by gunicorn exactly as
the store is (``deploy/gunicorn.conf.py``, the same workers, the same debug mode
and template caching), on the same database, it does what each portal page must
do and nothing more: find the customer from the signed Flask session cookie (a
primary key lookup), read the same rows through the same indexes of the
portal's tables, and render a bare Jinja template. No portal code is imported:
the tables are declared here with the columns read.

    gunicorn -c deploy/gunicorn.conf.py "benchmarks.baseline:create_app()"

with ``FLASK_SQLALCHEMY_DATABASE_URI`` and ``FLASK_SECRET_KEY`` in the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import Flask, Response, abort, render_template, request, session
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, String, Table

db = SQLAlchemy()
metadata = sa.MetaData()
When = DateTime(timezone=True)

businesses = Table(
    "portal_businesses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String),
    Column("name", String),
)
customers = Table(
    "portal_customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("business_id", Integer),
    Column("mode", String),
    Column("email", String),
    Column("name", String),
)
payment_methods = Table(
    "portal_payment_methods",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("brand", String),
    Column("last4", String),
    Column("exp_month", Integer),
    Column("exp_year", Integer),
)
subscriptions = Table(
    "portal_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String),
    Column("customer_id", Integer),
    Column("product", String),
    Column("plan", String),
    Column("price_amount", Integer),
    Column("quantity", Integer),
    Column("currency", String),
    Column("interval", String),
    Column("status", String),
    Column("current_period_end", When),
    Column("cancel_at_period_end", Boolean),
    Column("ended_at", When),
    Column("created_at", When),
    Column("payment_method_id", Integer),
)
invoices = Table(
    "portal_invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String),
    Column("customer_id", Integer),
    Column("number", String),
    Column("status", String),
    Column("currency", String),
    Column("subtotal", Integer),
    Column("tax", Integer),
    Column("total", Integer),
    Column("issued_at", When),
    Column("paid_at", When),
)
invoice_lines = Table(
    "portal_invoice_lines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("invoice_id", Integer),
    Column("position", Integer),
    Column("description", String),
    Column("quantity", Integer),
    Column("unit_amount", Integer),
    Column("amount", Integer),
)
payments = Table(
    "portal_payments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String),
    Column("customer_id", Integer),
    Column("invoice_id", Integer),
    Column("amount", Integer),
    Column("currency", String),
    Column("status", String),
    Column("failure_reason", String),
    Column("created_at", When),
)
license_keys = Table(
    "portal_license_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer),
)
login_links = Table(
    "portal_login_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String),
    Column("customer_id", Integer),
    Column("expires_at", When),
    Column("used_at", When),
)
outbox = Table(
    "portal_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("recipient", String),
    Column("kind", String),
    Column("params", JSON),
    Column("status", String),
    Column("created_at", When),
    Column("attempts", Integer),
    Column("next_attempt_at", When),
)

CURRENT = ("active", "on_hold", "pending")
PER_PAGE = 25


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The baseline app; settings from ``config``, else from ``FLASK_*`` variables."""
    app = Flask(__name__, template_folder="templates/baseline")
    if config is None:
        app.config.from_prefixed_env()
    else:
        app.config.from_mapping(config)
    db.init_app(app)
    app.add_template_filter(money)
    app.add_url_rule("/health", "health", lambda: "ok")
    app.add_url_rule("/sign-in", "sign_in", sign_in)
    app.add_url_rule("/overview", "overview", overview)
    app.add_url_rule("/billing", "billing", billing)
    app.add_url_rule("/subscriptions", "subscriptions", subscriptions_page)
    app.add_url_rule("/invoices/<public_id>", "invoice", invoice_page)
    app.add_url_rule("/invoices/<public_id>.pdf", "invoice_pdf", invoice_pdf)
    app.add_url_rule("/link/<token>", "link", link_page)
    app.add_url_rule("/request-link", "request_link", request_link, methods=["GET", "POST"])
    return app


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency}"


def sign_in() -> str:
    """Not measured: put a customer (by email) in the session cookie, for the harness."""
    row = db.session.execute(
        sa.select(customers.c.id)
        .join(businesses, businesses.c.id == customers.c.business_id)
        .where(
            businesses.c.public_id == request.args.get("business", "acme"),
            customers.c.mode == "test",
            customers.c.email == request.args.get("email", ""),
        )
    ).first()
    if row is None:
        abort(404)
    session["customer_id"] = row.id
    return "signed in"


def _customer() -> sa.Row[Any]:
    customer_id = session.get("customer_id")
    row = (
        db.session.execute(sa.select(customers).where(customers.c.id == customer_id)).first()
        if isinstance(customer_id, int)
        else None
    )
    if row is None:
        abort(401)
    return row


def overview() -> str:
    customer = _customer()
    current = db.session.execute(
        sa.select(subscriptions)
        .where(subscriptions.c.customer_id == customer.id, subscriptions.c.status.in_(CURRENT))
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    ).all()
    latest = db.session.execute(
        sa.select(invoices)
        .where(invoices.c.customer_id == customer.id)
        .order_by(invoices.c.issued_at.desc(), invoices.c.id.desc())
        .limit(5)
    ).all()
    keys = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(license_keys)
        .where(license_keys.c.customer_id == customer.id)
    )
    return render_template(
        "overview.html", customer=customer, subscriptions=current, invoices=latest, keys=keys
    )


def billing() -> str:
    """25 entries of invoices and payments, newest first, after a (time, kind, id) cursor.

    Two index range scans (each table's (customer_id, time) index) of 26 rows,
    merged: the essential work of the portal's history page.
    """
    customer = _customer()
    after = _position(request.args.get("after"))
    invoice_rows = sa.select(
        sa.literal("invoice").label("kind"),
        invoices.c.id,
        invoices.c.public_id,
        invoices.c.issued_at.label("at"),
        invoices.c.status,
        invoices.c.total.label("amount"),
        invoices.c.currency,
        invoices.c.number,
    ).where(invoices.c.customer_id == customer.id)
    payment_rows = (
        sa.select(
            sa.literal("payment").label("kind"),
            payments.c.id,
            payments.c.public_id,
            payments.c.created_at.label("at"),
            payments.c.status,
            payments.c.amount,
            payments.c.currency,
            invoices.c.number,
        )
        .select_from(payments.outerjoin(invoices, payments.c.invoice_id == invoices.c.id))
        .where(payments.c.customer_id == customer.id)
    )
    entries: list[sa.Row[Any]] = []
    for kind, query, at, pk in (
        ("invoice", invoice_rows, invoices.c.issued_at, invoices.c.id),
        ("payment", payment_rows, payments.c.created_at, payments.c.id),
    ):
        if after is not None:
            query = query.where(_older(kind, at, pk, after))
        query = query.order_by(at.desc(), pk.desc()).limit(PER_PAGE + 1)
        entries.extend(db.session.execute(query).all())
    entries.sort(key=lambda row: (row.at, row.kind, row.id), reverse=True)
    page = entries[:PER_PAGE]
    older = None
    if len(entries) > PER_PAGE:
        last = page[-1]
        older = quote(f"{last.at.isoformat()}|{last.kind}|{last.id}")
    return render_template("billing.html", customer=customer, entries=page, older=older)


def _position(cursor: str | None) -> tuple[datetime, str, int] | None:
    if not cursor:
        return None
    try:
        at, kind, pk = cursor.split("|")
        return datetime.fromisoformat(at), kind, int(pk)
    except ValueError:
        abort(400)


def _older(kind: str, at: Any, pk: Any, position: tuple[datetime, str, int]) -> Any:
    # (at, kind, id) < position, with this branch's kind a constant.
    spot_at, spot_kind, spot_pk = position
    if kind < spot_kind:
        return at <= spot_at
    if kind > spot_kind:
        return at < spot_at
    # The first term bounds the index range; the second only filters within it.
    return sa.and_(at <= spot_at, sa.or_(at < spot_at, pk < spot_pk))


def subscriptions_page() -> str:
    customer = _customer()
    rows = db.session.execute(
        sa.select(subscriptions, payment_methods.c.brand, payment_methods.c.last4)
        .select_from(
            subscriptions.outerjoin(
                payment_methods, payment_methods.c.id == subscriptions.c.payment_method_id
            )
        )
        .where(subscriptions.c.customer_id == customer.id)
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    ).all()
    return render_template("subscriptions.html", customer=customer, subscriptions=rows)


def _invoice(public_id: str) -> tuple[sa.Row[Any], sa.Row[Any], list[sa.Row[Any]]]:
    customer = _customer()
    invoice = db.session.execute(
        sa.select(invoices).where(
            invoices.c.public_id == public_id, invoices.c.customer_id == customer.id
        )
    ).first()
    if invoice is None:
        abort(404)
    lines = db.session.execute(
        sa.select(invoice_lines)
        .where(invoice_lines.c.invoice_id == invoice.id)
        .order_by(invoice_lines.c.position)
    ).all()
    return customer, invoice, list(lines)


def invoice_page(public_id: str) -> str:
    customer, invoice, lines = _invoice(public_id)
    paid = db.session.execute(
        sa.select(payments)
        .where(payments.c.invoice_id == invoice.id)
        .order_by(payments.c.created_at, payments.c.id)
    ).all()
    return render_template(
        "invoice.html", customer=customer, invoice=invoice, lines=lines, payments=paid
    )


def invoice_pdf(public_id: str) -> Response:
    """A one-page PDF of the invoice with reportlab's built-in font."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    customer, invoice, lines = _invoice(public_id)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4)
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawString(50, 790, f"Invoice {invoice.number}")
    canvas.setFont("Helvetica", 10)
    canvas.drawString(50, 770, f"{customer.name} <{customer.email}>")
    canvas.drawString(50, 756, f"Issued {invoice.issued_at:%Y-%m-%d}")
    y = 720
    for line in lines:
        canvas.drawString(50, y, f"{line.quantity} x {line.description}")
        canvas.drawRightString(540, y, money(line.amount, invoice.currency))
        y -= 16
    canvas.setFont("Helvetica-Bold", 10)
    canvas.drawRightString(540, y - 10, "Total " + money(invoice.total, invoice.currency))
    canvas.showPage()
    canvas.save()
    response = Response(buffer.getvalue(), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _now() -> datetime:
    return datetime.now(UTC)


def _csrf() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def link_page(token: str) -> tuple[str, int]:
    """A sign-in link's "Continue" page: find the unused, unexpired link by its hash."""
    found = db.session.execute(
        sa.select(login_links.c.id).where(
            login_links.c.token_hash == hashlib.sha256(token.encode()).hexdigest(),
            login_links.c.used_at.is_(None),
            login_links.c.expires_at > _now(),
        )
    ).first()
    if found is None:
        return render_template("gone.html"), 410
    return render_template("continue.html", csrf=_csrf()), 200


def request_link() -> str | tuple[str, int]:
    """The sign-in request: check the form's token, queue one message, commit."""
    if request.method == "GET":
        return render_template("request_link.html", csrf=_csrf())
    sent = request.form.get("csrf_token", "")
    if not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400)
    email = request.form.get("email", "").strip().lower()
    if "@" not in email or len(email) > 254:
        return render_template("request_link.html", csrf=_csrf()), 400
    now = _now()
    db.session.execute(
        outbox.insert().values(
            recipient=email,
            kind="login_link",
            params={"business": "acme", "mode": "test"},
            status="pending",
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )
    db.session.commit()
    return render_template("sent.html")
