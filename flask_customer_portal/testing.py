"""Helpers for testing an app that mounts the portal: a signed-in client, the mail, test cards.

The pytest plugin (:mod:`.pytest_plugin`) hands them out as the fixtures
``portal_client``, ``portal_outbox`` and ``portal_provider``; a test suite
that does not use pytest can build them itself. Each works through the
portal's public paths: a client signs in by opening a real portal link, mail is
rendered by the portal's own senders, cards are saved through the test
provider's card page.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context, session
from flask.sessions import SessionMixin
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf
from werkzeug.test import TestResponse

from . import cards, emails
from .access import create_portal_session
from .config import config_value
from .mail import Email
from .models import Customer, OutboxMessage, PaymentMethod
from .providers import TestProvider
from .providers.test_tables import TestCharge
from .proxies import portal, provider_for
from .state import PortalState

#: A portal sign-in link in a message: ``.../login/<business>/<token>``.
_SIGN_IN_LINK = re.compile(r"https?://[^\s\"'<>]+/login/[^\s\"'<>/]+/[^\s\"'<>/]+")


@contextmanager
def app_context(app: Flask) -> Iterator[None]:
    """Run the block in ``app``'s current app context, or in a new one if there is none."""
    if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
        yield
        return
    with app.app_context():
        yield


class PortalClient(FlaskClient):
    """A test client that adds the CSRF token to the forms it posts.

    ``client.post(url, data={...})`` sends the session's CSRF token with the
    form unless ``data`` holds a ``csrf_token`` already (give one, even empty,
    to test a refusal). Each request runs in contexts of its own, as on a
    server, even while the test keeps an app context pushed (pytest-flask does).
    """

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        """Open a URL as :meth:`FlaskClient.open` does, with the CSRF token in a posted form."""
        data = kwargs.get("data")
        if kwargs.get("method") == "POST" and isinstance(data, Mapping):
            if "csrf_token" not in data:
                kwargs["data"] = {**data, "csrf_token": self.csrf_token()}
        context = contextvars.Context()
        response: TestResponse = context.run(super().open, *args, **kwargs)
        # Tear the request's contexts down now, in the context they live in.
        context.run(self._context_stack.close)
        return response

    def csrf_token(self) -> str:
        """Return a CSRF token valid for this client's session (Flask-WTF's, as forms carry)."""
        with self.session_transaction() as stored:
            return contextvars.Context().run(self._new_csrf_token, stored)

    def _new_csrf_token(self, stored: SessionMixin) -> str:
        # Flask-WTF reads and keeps its secret in the request's session: lend it the client's.
        with self.application.test_request_context():
            session.update(stored)
            token: str = generate_csrf()
            stored.update(session)
        return token

    def open_link(self, url: str) -> TestResponse:
        """Open a portal sign-in link as a person does: its page, then "Continue"; return that.

        A link that works answers with a redirect (303) into the portal.
        """
        path = urlsplit(url).path
        page = self.get(path)
        if page.status_code != 200:
            return page
        return self.post(path, data={})


def signed_in_client(app: Flask, customer: Customer | None = None) -> PortalClient:
    """Return a new :class:`PortalClient` of ``app``, signed in as ``customer`` if given.

    It signs in through a new single-use portal link, as a customer coming
    from the merchant's app does.

    :raises AssertionError: the portal refused the link.
    """
    client = PortalClient(app, app.response_class, use_cookies=True)
    if customer is None:
        return client
    with app_context(app):
        customer = _attached(customer)
        link = create_portal_session(customer)
    answer = client.open_link(link.url)
    if answer.status_code != 303:
        raise AssertionError(f"signing {link.url} in failed: {answer.status}\n{answer.text}")
    return client


def _state(app: Flask) -> PortalState:
    with app_context(app):
        state: PortalState = portal._get_current_object()  # type: ignore[attr-defined]
    return state


def _attached(customer: Customer) -> Customer:
    # The customer may come from another app context (a fixture's): use this one's copy.
    identity = sa.inspect(customer).identity
    found = portal.session.get(Customer, identity) if identity else None
    if found is None:
        raise ValueError("the customer is not stored: create it with upsert_customer first")
    return found


@dataclass(frozen=True)
class SentMail:
    """A message the portal sent: to whom, and what it says."""

    recipient: str
    subject: str
    text: str
    html: str

    @property
    def link(self) -> str | None:
        """The portal sign-in link in the message, or ``None`` if it holds none."""
        found = _SIGN_IN_LINK.search(self.text)
        return found.group(0) if found else None


class _Recorder:
    """A mailer that keeps each message instead of delivering it."""

    def __init__(self) -> None:
        self.sent: list[SentMail] = []

    def send(self, recipient: str, email: Email) -> None:
        self.sent.append(SentMail(recipient, email.subject, email.text, email.html))


class Outbox:
    """The mail the portal sends while the outbox is recording, oldest first.

    While recording, the app's mailer is replaced by one that keeps the
    messages (nothing leaves the machine) and the mail thread is not woken:
    reading the outbox sends what is queued, through the portal's own senders,
    so the messages are the ones a customer would get.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._recorder = _Recorder()

    @contextmanager
    def recording(self) -> Iterator[Outbox]:
        """Record the app's mail while the block runs; put its mailer back after."""
        state = _state(self.app)
        mailer, dispatcher = state.mailer, state.dispatcher
        state.mailer, state.dispatcher = self._recorder, None
        try:
            yield self
        finally:
            state.mailer, state.dispatcher = mailer, dispatcher

    @property
    def messages(self) -> list[SentMail]:
        """Every message sent so far, oldest first (queued mail is sent first).

        :raises AssertionError: a message could not be rendered (a template of
            yours that fails, for instance); the error says why.
        """
        with app_context(self.app):
            while True:
                sent, failed = emails.send_queued()
                if failed:
                    errors = portal.session.scalars(
                        sa.select(OutboxMessage.last_error).where(
                            OutboxMessage.status == "pending",
                            OutboxMessage.last_error.is_not(None),
                        )
                    )
                    reasons = list(errors)
                    portal.session.commit()  # end the read, as send_queued ends its own
                    raise AssertionError(f"the portal could not send mail: {reasons}")
                if not sent:
                    return list(self._recorder.sent)

    def to(self, recipient: str) -> list[SentMail]:
        """The messages sent to ``recipient``, oldest first."""
        return [message for message in self.messages if message.recipient == recipient]

    def __iter__(self) -> Iterator[SentMail]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def __getitem__(self, index: int) -> SentMail:
        return self.messages[index]


class TestCards:
    """The test provider's cards, by what a charge to them does."""

    __test__ = False  # not a pytest test class

    SUCCEEDS = "4242 4242 4242 4242"
    DECLINED = "4000 0000 0000 0002"
    INSUFFICIENT_FUNDS = "4000 0000 0000 9995"
    EXPIRED = "4000 0000 0000 0069"
    #: Asks for authentication (3-D Secure): the challenge page then approves or fails it.
    AUTHENTICATE = "4000 0027 6000 3184"
    #: Saves fine; every charge to it is declined.
    CHARGE_FAILS = "4000 0000 0000 0341"


class PortalProvider(TestCards):
    """The test provider of an app, its test cards, and a way to save one for a customer.

    :ivar provider: the app's :class:`~.providers.TestProvider` itself.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        provider = _state(app).test_provider
        assert isinstance(provider, TestProvider)
        self.provider = provider

    def add_card(self, customer: Customer, number: str = TestCards.SUCCEEDS) -> PaymentMethod:
        """Save test card ``number`` for ``customer`` as the card page does; commit; return it.

        The customer's mode must be served by a test provider (test mode, or
        live mode with ``CustomerPortal(provider=TestProvider())``).

        :raises CardError: not a test card.
        """
        with app_context(self.app):
            customer = _attached(customer)
            provider = provider_for(customer.mode)
            if not isinstance(provider, TestProvider):
                raise TypeError(f"{customer.mode} mode's payment provider is not a TestProvider")
            back = config_value("EXTERNAL_URL") or "http://localhost"
            setup_id = cards.begin_card_setup(customer, return_url=back).rsplit("/", 1)[1]
            expiry = f"12/{(date.today().year + 5) % 100:02d}"
            provider.save_card(setup_id, number=number, expiry=expiry, cvc="123")
            return cards.finish_card_setup(customer, {"setup_id": setup_id})

    @property
    def charges(self) -> list[TestCharge]:
        """Every charge the provider made, oldest first."""
        with app_context(self.app):
            return list(self.provider.charges.values())
