"""Plain helpers the test modules share; the fixtures, and the helpers they need, are in conftest.

Cards of the test provider, recorded signals, counted SQL statements, the
outbox, PDF text and every stored row: set-up and reading steps that several
modules take the same way.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import sqlalchemy as sa
from blinker import NamedSignal
from flask import Flask, current_app
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy.orm import Session
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

import flask_customer_portal as portal
from benchmarks.sites import counting as counting_on
from flask_customer_portal import cards
from flask_customer_portal import models as m
from flask_customer_portal.db import Base

from .conftest import EXTERNAL_URL, csrf_token, provider_of
from .smtp import HOST

#: Test cards of the test provider, by what a charge to them does.
SUCCEEDS = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
AUTHENTICATE = "4000 0027 6000 3184"
CHARGE_FAILS = "4000 0000 0000 0341"
#: Where the provider sends a customer back after a payment's challenge.
PAYMENT_RETURN_URL = EXTERNAL_URL + "/portal/payments/{payment_id}/return"

#: Signals a test heard, as (name, keyword arguments with objects as their public ids).
Received = list[tuple[str, dict[str, Any]]]


# -- Pages -------------------------------------------------------------------------------


def form_token(client: FlaskClient, path: str) -> str:
    """GET the page at ``path`` and return its form's CSRF token."""
    page = client.get(path)
    assert page.status_code == 200, page.status
    return csrf_token(page.text)


# -- Cards and payments ------------------------------------------------------------------


def enter_card(
    client: FlaskClient,
    page_url: str,
    number: str,
    *,
    expiry: str = "12/34",
    cvc: str = "123",
    shows: Sequence[str] = (),
) -> TestResponse:
    """Open the test provider's card page like a person (it ``shows`` these) and submit a card."""
    page = client.get(page_url)
    assert page.status_code == 200
    for text in shows:
        assert text in page.text, text
    form = {"csrf_token": csrf_token(page.text), "number": number, "expiry": expiry, "cvc": cvc}
    return client.post(page_url, data=form)


def add_card(customer: m.Customer, number: str) -> m.PaymentMethod:
    """Add a test card the way a customer does: the provider's page, then back to the portal."""
    url = cards.begin_card_setup(customer, return_url=EXTERNAL_URL + "/back")
    assert url.startswith(EXTERNAL_URL + "/portal/test-provider/setup/")
    setup_id = url.rsplit("/", 1)[1]
    provider = provider_of(current_app._get_current_object())  # type: ignore[attr-defined]
    back = provider.save_card(setup_id, number=number, expiry="12/34", cvc="123")
    assert back == f"{EXTERNAL_URL}/back?setup_id={setup_id}"
    return cards.finish_card_setup(customer, {"setup_id": setup_id})


def put_on_hold(subscription: m.Subscription, renewals: int = 1) -> list[m.Invoice]:
    """Fail ``renewals`` renewals in a row: the subscription is on hold with that many invoices."""
    return [
        portal.record_failed_renewal(subscription, reason="Card declined at renewal")
        for _ in range(renewals)
    ]


# -- What the portal sent, ran and stored ------------------------------------------------


@contextmanager
def record_signals(app: Flask, named: dict[str, NamedSignal]) -> Iterator[Received]:
    """Record every signal of ``named`` that ``app`` sends, by name, while the block runs."""
    seen: Received = []

    def receiver(name: str) -> Callable[..., None]:
        def receive(sender: Flask, **kwargs: Any) -> None:
            assert sender is app
            seen.append((name, {k: getattr(v, "public_id", v) for k, v in kwargs.items()}))

        return receive

    with ExitStack() as stack:
        for name, signal in named.items():
            stack.enter_context(signal.connected_to(receiver(name), app))
        yield seen


def signalled(received: Received, name: str) -> list[dict[str, Any]]:
    """The keyword arguments of every ``name`` signal in ``received``, oldest first."""
    return [kwargs for heard, kwargs in received if heard == name]


def counting(app: Flask) -> AbstractContextManager[list[str]]:
    """Collect the SQL statements run on the portal's engine while the block runs."""
    return counting_on(app.extensions["customer_portal"].engine)


def count(session: Session, model: type[Base]) -> int:
    """How many rows of ``model`` the database holds."""
    return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def run_threads(target: Callable[[], None], count: int) -> None:
    """Run ``target`` in ``count`` threads at once and wait for them all."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def outbox_kinds(session: Session) -> list[str]:
    """The kinds of the messages in the outbox, oldest first."""
    return list(session.scalars(sa.select(m.OutboxMessage.kind).order_by(m.OutboxMessage.id)))


def stored_rows(session: Session) -> list[tuple[str, str]]:
    """Every row of every portal table, as (the table's name, the row's repr)."""
    return [
        (table.name, repr(tuple(row)))
        for table in Base.metadata.sorted_tables
        for row in session.execute(sa.select(table))
    ]


def shown(text: str) -> str:
    """Text as a reader sees it: Babel puts no-break spaces in money."""
    return text.replace("\xa0", " ")


def pdf_text(document: bytes) -> str:
    """The text of a PDF's pages, as a reader sees it."""
    assert document.startswith(b"%PDF-")
    pages = PdfReader(io.BytesIO(document)).pages
    return shown("\n".join(page.extract_text() for page in pages))


@contextmanager
def serving(app: Flask, port: int = 0) -> Iterator[str]:
    """Serve ``app`` on a local port (any free one by default) in a thread; yield its URL."""
    server = make_server(HOST, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def close_app(app: Flask) -> None:
    """End what an app of a test's own keeps running: its mail thread, its connections."""
    state = app.extensions["customer_portal"]
    if state.dispatcher is not None:
        state.dispatcher.stop()
    with app.app_context():
        state.engine.dispose()
