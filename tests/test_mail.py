"""Mail through the outbox, delivered to a real local SMTP server (M1, M2, M3, T2, T8).

The app mails through aiosmtpd on 127.0.0.1 (:mod:`tests.smtp`). Unless a test
says otherwise, mail waits in the outbox until the test calls ``send_due`` (what
``flask portal send-mail`` runs), so each step can be checked on its own.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from werkzeug.test import TestResponse

import flask_customer_portal as portal
from flask_customer_portal import emails
from flask_customer_portal import models as m
from flask_customer_portal.db import Base
from flask_customer_portal.links import hash_token
from flask_customer_portal.outbox import local_messages
from flask_customer_portal.proxies import session as db_session
from flask_customer_portal.proxies import unit_of_work

from . import smtp
from .conftest import EXTERNAL_URL, open_link, single_use_id
from .helpers import counting, form_token
from .smtp import HOST, SilentServer, SMTPServer, link_in, text_part, wait_until

smtp_server = smtp.smtp_server  # the fixture: a running aiosmtpd on 127.0.0.1

SENDER = "billing@acme.example.com"
LOGIN_PAGE = "/portal/test/login/acme"
SENT_PAGE = "If this email belongs to a customer of Acme Cloud, a link is on its way."
#: A sign-in link: the login page, then a signed token (payload.timestamp.signature).
LINK = re.compile(re.escape(f"{EXTERNAL_URL}{LOGIN_PAGE}/") + r"[\w-]+\.[\w-]+\.[\w-]+")


# -- Fixtures and helpers ------------------------------------------------------------


@pytest.fixture
def mail_settings() -> dict[str, Any]:
    """Extra settings of the test app; a test changes them with ``parametrize``."""
    return {}


@pytest.fixture
def app(
    database_url: str,
    app_factory: Callable[..., Flask],
    smtp_server: SMTPServer,
    mail_settings: dict[str, Any],
) -> Flask:
    """The portal app, mailing through the local SMTP server (replaces conftest's ``app``)."""
    settings = {
        "CUSTOMER_PORTAL_EXTERNAL_URL": EXTERNAL_URL,
        "MAIL_SERVER": HOST,
        "MAIL_PORT": smtp_server.port,
        "MAIL_DEFAULT_SENDER": SENDER,
        # Flask-Mail sends nothing in a TESTING app unless told to.
        "MAIL_SUPPRESS_SEND": False,
        "CUSTOMER_PORTAL_MAIL_DISPATCH": "manual",
        "CUSTOMER_PORTAL_MAIL_TIMEOUT": 1,
        **mail_settings,
    }
    return app_factory(database_url, **settings)


def ask_for_link(client: FlaskClient, email: str, path: str = LOGIN_PAGE) -> TestResponse:
    """Type ``email`` on the login page and submit it."""
    return client.post(path, data={"email": email, "csrf_token": form_token(client, path)})


def assert_signed_in(client: FlaskClient, response: TestResponse, name: str = "Ana Souza") -> None:
    assert response.status_code == 303, response.status
    assert response.headers["Location"] == "/portal/"
    home = client.get("/portal/")
    assert home.status_code == 200, home.status
    assert f"Hello, {name}" in home.get_data(as_text=True)


def send_due(app: Flask) -> tuple[int, int]:
    """Send the due mail, as ``flask portal send-mail`` does: (sent, failed)."""
    with app.app_context():
        return emails.send_queued()


def outbox(app: Flask) -> list[m.OutboxMessage]:
    """The outbox rows as they are now in the database, oldest first."""
    with app.app_context():
        session = db_session()
        rows = list(session.scalars(sa.select(m.OutboxMessage).order_by(m.OutboxMessage.id)))
        session.expunge_all()
        return rows


def outbox_in_transaction() -> list[int]:
    """The outbox ids the current transaction sees."""
    return list(db_session().scalars(sa.select(m.OutboxMessage.id)))


def only_row(app: Flask) -> m.OutboxMessage:
    rows = outbox(app)
    assert len(rows) == 1, rows
    return rows[0]


# -- Delivery ------------------------------------------------------------------------


def test_the_login_page_mails_a_link_that_signs_in(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M1: the login page queues one message; send-mail delivers it once; the link signs in."""
    response = ask_for_link(client, "ana@example.com")

    assert response.status_code == 200
    assert SENT_PAGE in response.get_data(as_text=True)
    row = only_row(app)
    assert (row.kind, row.recipient, row.status) == ("login_link", "ana@example.com", "pending")
    assert smtp_server.received == []

    sent = app.test_cli_runner().invoke(args=["portal", "send-mail"])
    assert sent.exit_code == 0, sent.output
    assert "Sent 1 message" in sent.output
    assert send_due(app) == (0, 0)

    (received,) = smtp_server.received
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ["ana@example.com"]
    message = received.message
    assert message["To"] == "ana@example.com"
    assert message["From"] == SENDER
    assert message["Subject"] == "Your sign-in link for Acme Cloud"
    link = link_in(message)
    assert LINK.fullmatch(link), link
    assert f'href="{link}"' in text_part(message, "html")
    assert "Hello Ana Souza" in text_part(message, "plain")
    row = only_row(app)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None

    assert_signed_in(client, open_link(client, link))


def test_an_unknown_email_gets_the_same_page_and_no_mail(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M1, T8: an unknown email gets the same page; its message is dropped, never sent."""
    response = ask_for_link(client, "nobody@example.com")

    assert response.status_code == 200
    assert SENT_PAGE in response.get_data(as_text=True)
    assert only_row(app).status == "pending"

    assert send_due(app) == (0, 0)

    assert only_row(app).status == "dropped"
    assert smtp_server.received == []
    with app.app_context():
        assert db_session().scalar(sa.select(sa.func.count()).select_from(m.LoginLink)) == 0


def test_create_portal_session_mails_a_link_of_its_own_that_works_once(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M1: create_portal_session(send_email=True) queues a portal_link mail with its own link."""
    returned = portal.create_portal_session(customer, send_email=True)

    row = only_row(app)
    assert (row.kind, row.recipient, row.status) == ("portal_link", "ana@example.com", "pending")
    assert row.params == {"customer_id": customer.id, "return_url": None, "next_path": None}

    assert send_due(app) == (1, 0)

    (received,) = smtp_server.received
    assert received.rcpt_tos == ["ana@example.com"]
    assert received.message["Subject"] == "Your Acme Cloud account"
    assert text_part(received.message, "html")
    link = link_in(received.message)
    assert LINK.fullmatch(link), link
    assert link != returned.url

    assert_signed_in(client, open_link(client, link))
    path = link.removeprefix(EXTERNAL_URL)
    other = app.test_client()
    assert other.get(path).status_code == 410
    token = form_token(other, LOGIN_PAGE)
    assert other.post(path, data={"csrf_token": token}).status_code == 410


@pytest.mark.parametrize(
    "mail_settings", [{"CUSTOMER_PORTAL_MAIL_BACKEND": "local"}], ids=["local"]
)
def test_the_local_backend_keeps_messages_and_sends_nothing(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """The local back-end keeps the sent messages in memory, newest first; no SMTP."""
    assert ask_for_link(client, "ana@example.com").status_code == 200
    portal.create_portal_session(customer, send_email=True)

    assert send_due(app) == (2, 0)

    kept = local_messages()
    assert [(k["recipient"], k["subject"]) for k in kept] == [
        ("ana@example.com", "Your Acme Cloud account"),
        ("ana@example.com", "Your sign-in link for Acme Cloud"),
    ]
    assert all(LINK.search(k["text"]) and LINK.search(k["html"]) for k in kept)
    assert [row.status for row in outbox(app)] == ["sent", "sent"]
    assert smtp_server.received == []


# -- M1: the outbox ------------------------------------------------------------------


def test_a_mail_server_that_is_down_delays_mail_and_never_breaks_the_page(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M1: SMTP down gives a normal page and a retry later; after recovery, exactly one mail."""
    smtp_server.stop()

    response = ask_for_link(client, "ana@example.com")

    assert response.status_code == 200
    assert SENT_PAGE in response.get_data(as_text=True)
    assert send_due(app) == (0, 1)
    row = only_row(app)
    assert (row.status, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.last_error is not None and row.last_error.startswith("ConnectionRefusedError")
    assert row.next_attempt_at > datetime.now(UTC)
    assert send_due(app) == (0, 0), "retried before its back-off"

    smtp_server.start()
    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1)):
        assert send_due(app) == (1, 0)
        assert send_due(app) == (0, 0)

    (received,) = smtp_server.received
    assert received.rcpt_tos == ["ana@example.com"]
    row = only_row(app)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert_signed_in(client, open_link(client, link_in(received.message)))


def test_two_senders_at_once_deliver_a_message_once(
    app: Flask,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M1: each message is claimed by one conditional UPDATE; two workers never both send it."""
    portal.create_portal_session(customer, send_email=True)
    # Both workers read the same due message before either claims it.
    both_selected = threading.Barrier(2, timeout=10)
    due_query = re.compile(r"SELECT portal_outbox\.id\s+FROM portal_outbox\s+WHERE")
    waited = threading.local()

    def after_cursor_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if due_query.match(statement) and not getattr(waited, "done", False):
            waited.done = True
            both_selected.wait()

    engine = app.extensions["customer_portal"].engine
    event.listen(engine, "after_cursor_execute", after_cursor_execute)
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(send_due(app))
        except BaseException as error:  # reported by the test below
            errors.append(error)

    workers = [threading.Thread(target=worker) for _ in range(2)]
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=30)
    finally:
        event.remove(engine, "after_cursor_execute", after_cursor_execute)

    assert errors == []
    assert sorted(results) == [(0, 0), (1, 0)]
    assert len(smtp_server.received) == 1
    assert only_row(app).attempts == 1


@pytest.mark.parametrize(
    "mail_settings", [{"CUSTOMER_PORTAL_MAIL_MAX_ATTEMPTS": 3}], ids=["3-attempts"]
)
def test_a_message_is_given_up_after_the_last_attempt(
    app: Flask,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M1: failures back off; after MAIL_MAX_ATTEMPTS the message is "failed", never sent."""
    smtp_server.stop()
    portal.create_portal_session(customer, send_email=True)

    waits = []
    with time_machine.travel(datetime.now(UTC)) as traveller:
        for attempt in (1, 2, 3):
            assert send_due(app) == (0, 1)
            row = only_row(app)
            assert (row.attempts, row.last_error is not None) == (attempt, True)
            if attempt < 3:
                assert row.status == "pending"
                waits.append(row.next_attempt_at - datetime.now(UTC))
                traveller.move_to(row.next_attempt_at + timedelta(seconds=1))
        assert row.status == "failed"

        smtp_server.start()
        traveller.shift(timedelta(days=2))
        assert send_due(app) == (0, 0)

    assert waits[1] > waits[0] > timedelta(0), "the second wait is longer (back-off)"
    assert only_row(app).status == "failed"
    assert smtp_server.received == []


def test_mail_queued_in_a_rolled_back_transaction_is_never_sent(
    app: Flask,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M1: the message is queued in the transaction of its cause and goes with it."""
    with pytest.raises(RuntimeError), unit_of_work():
        customer.name = "Ana Changed"
        emails.queue_portal_link(customer, return_url=None)
        db_session().flush()
        assert len(outbox_in_transaction()) == 1
        raise RuntimeError("the change fails after the mail was queued")

    assert outbox(app) == []
    with app.app_context():
        stored = db_session().get(m.Customer, customer.id)
        assert stored is not None and stored.name == "Ana Souza"
    assert send_due(app) == (0, 0)
    assert smtp_server.received == []


# -- M2: time-outs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "mail_settings",
    # A long time-out: while the page answers, the dispatcher is still waiting.
    [{"CUSTOMER_PORTAL_MAIL_DISPATCH": "thread", "CUSTOMER_PORTAL_MAIL_TIMEOUT": 30}],
    ids=["thread"],
)
def test_a_mail_server_that_never_answers_cannot_hang_the_login_page(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M2: the page answers while the mail thread still waits for the server's greeting."""
    smtp_server.stop()
    with SilentServer(smtp_server.port) as silent:
        response = ask_for_link(client, "ana@example.com")

        assert response.status_code == 200
        assert SENT_PAGE in response.get_data(as_text=True)
        assert silent.wait_for_connection(), "the mail thread never connected"
        row = only_row(app)
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, None)

        silent.hang_up()
        failed = wait_until(lambda: only_row(app).last_error)
        assert failed and failed.startswith("SMTPServerDisconnected"), failed
        assert only_row(app).status == "pending"


def test_sending_to_a_mail_server_that_never_answers_times_out(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """M2: with MAIL_TIMEOUT=1, send_due returns and records the time-out for a retry."""
    smtp_server.stop()
    with SilentServer(smtp_server.port) as silent:
        assert ask_for_link(client, "ana@example.com").status_code == 200

        outcome: list[tuple[int, int]] = []
        sender = threading.Thread(target=lambda: outcome.append(send_due(app)))
        sender.start()
        # Only a guard so a regression fails instead of hanging the suite.
        sender.join(timeout=60)
        hung = sender.is_alive()
        assert silent.connections, "send_due never reached the server"
        silent.hang_up()  # sets a hung sender free
        sender.join(timeout=10)

    assert not hung, "send_due hung on a server that never answers"
    assert outcome == [(0, 1)]
    row = only_row(app)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None and "timed out" in row.last_error, row.last_error
    assert row.next_attempt_at > datetime.now(UTC)


@pytest.mark.parametrize(
    "mail_settings", [{"CUSTOMER_PORTAL_MAIL_DISPATCH": "thread"}], ids=["thread"]
)
def test_the_mail_thread_sends_right_after_the_page_commits(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
) -> None:
    """MAIL_DISPATCH="thread": the mail arrives with no manual send."""
    assert ask_for_link(client, "ana@example.com").status_code == 200

    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == ["ana@example.com"]
    assert wait_until(lambda: only_row(app).status == "sent")
    assert_signed_in(client, open_link(client, link_in(received.message)))
    # Every later commit that queues mail wakes the thread again, not only the first.
    assert ask_for_link(app.test_client(), "ana@example.com").status_code == 200
    assert len(smtp_server.wait_for(2)) == 2


# -- M3: header safety ---------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "ana@example.com\r\nBcc: x@example.com",
        "ana@example.com\nBcc: x@example.com",
        "ana@example.com\rBcc: x@example.com",
        "Ana <ana@example.com>\r\nBcc: x@example.com",
    ],
    ids=["crlf", "lf", "cr", "display-name"],
)
def test_an_email_with_a_line_break_is_refused(
    app: Flask, client: FlaskClient, customer: m.Customer, email: str
) -> None:
    """M3: CR/LF in the email gets a form error (400) and nothing is queued."""
    response = ask_for_link(client, email)

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Enter the email address you used when you bought." in page
    assert 'aria-invalid="true"' in page
    assert outbox(app) == []


# -- T2 and T8 -----------------------------------------------------------------------


def test_the_mailed_token_is_in_no_column_and_no_log(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    smtp_server: SMTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """T2: the database and the logs hold the link's hash, never the link's token."""
    caplog.set_level(logging.DEBUG)
    # SQL and its parameters too (SQLAlchemy's own logger is at WARNING by default).
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    assert ask_for_link(client, "ana@example.com").status_code == 200
    assert send_due(app) == (1, 0)
    (received,) = smtp_server.received
    token = link_in(received.message).rsplit("/", 1)[1]
    secret = single_use_id(token)

    with app.app_context():
        session = db_session()
        values = [
            str(value)
            for table in Base.metadata.sorted_tables
            for row in session.execute(sa.select(table))
            for value in row
        ]
    assert hash_token(secret) in values
    assert not [value for value in values if token in value or secret in value]
    # aiosmtpd ("mail.log") stands for the outside world receiving the mail.
    logged = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(hash_token(secret) in message for message in logged), "the check proves nothing"
    assert not [message for message in logged if token in message or secret in message]


def test_known_unknown_and_other_business_emails_get_the_same_answer(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T8: same status, body, headers and SQL statement count whoever the email belongs to."""
    bolt = portal.create_business("Bolt Hosting", public_id="bolt")
    portal.upsert_customer(bolt, "bo@example.com", name="Bo")
    token = form_token(client, LOGIN_PAGE)

    def post(email: str, statements: list[str]) -> tuple[TestResponse, list[str]]:
        statements.clear()
        response = client.post(LOGIN_PAGE, data={"email": email, "csrf_token": token})
        return response, list(statements)

    with counting(app) as statements:
        post("warm-up@example.com", statements)
        answers = {
            email: post(email, statements)
            for email in ("ana@example.com", "nobody@example.com", "bo@example.com")
        }

    (known, known_sql), *others = answers.values()
    assert known.status_code == 200
    assert SENT_PAGE in known.get_data(as_text=True)
    assert known_sql
    assert CSRF_VALUE.search(known.get_data(as_text=True)), "the page has no CSRF token"
    for response, sql in others:
        assert response.status_code == known.status_code
        assert same_for_everyone(response.get_data(as_text=True)) == same_for_everyone(
            known.get_data(as_text=True)
        )
        assert headers_but_per_request_values(response) == headers_but_per_request_values(known)
        assert len(sql) == len(known_sql)
        assert sql == known_sql
    assert [row.kind for row in outbox(app)] == ["login_link"] * 4


#: What differs between two answers to anyone, and so says nothing about the email:
#: the CSRF token (signed with the time to the second, so two requests a second apart
#: get two tokens), the CSP nonce, and the values (not the names or flags) of cookies.
CSRF_VALUE = re.compile(r'(name="csrf_token"[^>]* value=")[^"]+')
PER_REQUEST = [
    (CSRF_VALUE, r"\1<csrf token>"),
    (re.compile(r'(nonce=")[^"]+'), r"\1<nonce>"),
    (re.compile(r"('nonce-)[^']+"), r"\1<nonce>"),
]
COOKIE_VALUE = re.compile(r"^([^=;]+=)[^;]*")


def same_for_everyone(text: str) -> str:
    """Return a page or header value with its per-request values replaced by placeholders."""
    for pattern, placeholder in PER_REQUEST:
        text = pattern.sub(placeholder, text)
    return text


def headers_but_per_request_values(response: TestResponse) -> list[tuple[str, str]]:
    """Every header but Date, with per-request values and cookie values taken out."""
    return sorted(
        (name, COOKIE_VALUE.sub(r"\1<value>", value) if name == "Set-Cookie" else value)
        for name, value in ((name, same_for_everyone(value)) for name, value in response.headers)
        if name != "Date"
    )


# -- A mailer of the host's own ------------------------------------------------------


class RecordingMailer:
    """A host's own mail service: it keeps what it is asked to deliver."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, portal.Email]] = []

    def send(self, recipient: str, email: portal.Email) -> None:
        self.sent.append((recipient, email))


def test_a_mailer_of_the_hosts_own_delivers_the_portals_mail(
    database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """CustomerPortal(mailer=...): the host's service gets each rendered message, once."""
    mailer = RecordingMailer()
    app = app_factory(database_url, portal_options={"mailer": mailer})
    with app.app_context():
        business = portal.create_business("Acme Cloud", public_id="acme")
        customer = portal.upsert_customer(business, "ana@example.com", name="Ana Souza")
        portal.create_portal_session(customer, send_email=True)
        assert emails.send_queued() == (1, 0)
        assert emails.send_queued() == (0, 0)
    ((recipient, email),) = mailer.sent
    assert recipient == "ana@example.com"
    assert email.subject == "Your Acme Cloud account"
    assert "Hello Ana Souza," in email.text and "Hello Ana Souza," in email.html
    assert re.search(re.escape(EXTERNAL_URL) + r"/portal/test/login/acme/[\w.-]+", email.text)


def test_a_mailer_is_checked_at_start_up(
    database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """A class is built once; anything without send(recipient, email) is refused at once."""
    app = app_factory(database_url, portal_options={"mailer": RecordingMailer})
    assert isinstance(app.extensions["customer_portal"].mailer, RecordingMailer)
    with pytest.raises(portal.ConfigurationError, match=r"send\(recipient, email\)"):
        app_factory(database_url, portal_options={"mailer": object()})
