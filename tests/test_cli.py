"""The ``flask portal`` commands for the merchant: API keys, invites, sessions, mail."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal import outbox

from .conftest import EXTERNAL_URL, open_link, sign_in_with_link

API = "/portal/api/v1"


def run(app: Flask, *args: str) -> Result:
    """Run ``flask portal ARGS...`` in ``app``'s context."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=["portal", *args])


def create_session(client: FlaskClient, customer_id: str, key: str) -> int:
    path = f"{API}/customers/{customer_id}/customer-portal/session"
    return client.post(path, headers={"Authorization": f"Bearer {key}"}).status_code


def test_create_api_key_prints_a_working_key_once(
    app: Flask, client: FlaskClient, customer: m.Customer, session: Session
) -> None:
    """T2, T13: the key is printed once with a warning; the database keeps only its hash."""
    result = run(app, "create-api-key", "--business", "acme", "--mode", "test", "--name", "crm")
    assert result.exit_code == 0, result.output
    key = re.search(r"cp_test_\S+", result.output)
    key_id = re.search(r"key_[0-9a-z]+", result.output)
    assert key and key_id
    assert "will not be shown again" in result.output
    assert create_session(client, customer.public_id, key.group()) == 200

    row = session.scalars(sa.select(m.ApiKey)).one()
    assert (row.public_id, row.mode, row.name) == (key_id.group(), "test", "crm")
    assert row.key_hash != key.group() and key.group() not in row.hint


def test_create_api_key_as_json(app: Flask, client: FlaskClient, business: m.Business) -> None:
    """T13: a live key (cp_live_...) reaches live customers only."""
    result = run(app, "create-api-key", "--business", "acme", "--mode", "live", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert set(created) == {"id", "key", "mode", "business"}
    assert created["id"].startswith("key_") and created["key"].startswith("cp_live_")
    assert (created["mode"], created["business"]) == ("live", "acme")

    live = portal.upsert_customer(business, "bo@example.com", mode="live")
    test = portal.upsert_customer(business, "bo@example.com", mode="test")
    assert create_session(client, live.public_id, created["key"]) == 200
    assert create_session(client, test.public_id, created["key"]) == 404


def test_create_api_key_refuses_unknown_businesses_and_modes(
    app: Flask, business: m.Business, session: Session
) -> None:
    """A clear message and a non-zero exit; no key is made."""
    unknown = run(app, "create-api-key", "--business", "nobody", "--mode", "test")
    assert unknown.exit_code != 0
    assert "No business with the id 'nobody'" in unknown.output
    bad_mode = run(app, "create-api-key", "--business", "acme", "--mode", "staging")
    assert bad_mode.exit_code != 0 and "staging" in bad_mode.output
    no_mode = run(app, "create-api-key", "--business", "acme")
    assert no_mode.exit_code != 0 and "--mode" in no_mode.output
    assert session.scalars(sa.select(m.ApiKey)).all() == []


def test_revoke_api_key_makes_the_key_fail(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T13: a revoked key gets the API's 401 at once."""
    created = json.loads(
        run(app, "create-api-key", "--business", "acme", "--mode", "test", "--json").output
    )
    assert create_session(client, customer.public_id, created["key"]) == 200

    result = run(app, "revoke-api-key", created["id"])
    assert result.exit_code == 0, result.output
    assert f"Revoked API key {created['id']}" in result.output
    assert create_session(client, customer.public_id, created["key"]) == 401

    again = run(app, "revoke-api-key", created["id"])
    assert again.exit_code != 0 and "No live API key" in again.output
    assert run(app, "revoke-api-key", "key_unknown").exit_code != 0


def test_invite_prints_a_static_and_a_dynamic_link(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """Share invite: both links work; the customer id is the one the HTTP API takes."""
    result = run(app, "invite", "Ana@Example.com", "--business", "acme", "--json")
    assert result.exit_code == 0, result.output
    invite = json.loads(result.output)
    assert set(invite) == {"customer_id", "static_link", "dynamic_link", "expires_at"}
    assert invite["customer_id"] == customer.public_id
    assert invite["static_link"] == f"{EXTERNAL_URL}/portal/test/login/acme"
    assert invite["dynamic_link"].startswith(invite["static_link"] + "/")
    expires_at = datetime.fromisoformat(invite["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)

    static_page = client.get(invite["static_link"].removeprefix(EXTERNAL_URL))
    assert static_page.status_code == 200 and "Acme Cloud" in static_page.text
    assert open_link(client, invite["dynamic_link"]).status_code == 303
    assert "ana@example.com" in client.get("/portal/").text

    text = run(app, "invite", "ana@example.com", "--business", "acme")
    assert text.exit_code == 0, text.output
    assert invite["static_link"] in text.output
    assert re.search(rf"{re.escape(invite['static_link'])}/\S+", text.output)
    assert "works once" in text.output


def test_invite_send_email_mails_a_link_of_its_own(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """M1: --send-email mails before the command ends; no link waits in the outbox."""
    app = app_factory(
        database_url, CUSTOMER_PORTAL_MAIL_BACKEND="local", CUSTOMER_PORTAL_MAIL_DISPATCH="thread"
    )
    with app.app_context():
        portal.upsert_customer(portal.create_business("Acme", public_id="acme"), "ana@example.com")
    result = run(app, "invite", "ana@example.com", "--business", "acme", "--send-email")
    assert result.exit_code == 0, result.output
    assert "A sign-in link of its own was emailed to ana@example.com." in result.output
    with app.app_context():
        message = (
            app.extensions["customer_portal"].session.scalars(sa.select(m.OutboxMessage)).one()
        )
        assert (message.kind, message.recipient, message.status) == (
            "portal_link",
            "ana@example.com",
            "sent",
        )
        (mailed,) = outbox.local_messages()
    token = re.search(r"/login/acme/(\S+)", result.output)
    assert token and token.group(1) not in json.dumps(message.params)
    assert "/portal/test/login/acme/" in mailed["text"] and token.group(1) not in mailed["text"]


def test_invite_refuses_unknown_customers_and_businesses(app: Flask, customer: m.Customer) -> None:
    """T13: a customer of the other mode is unknown too."""
    for args, message in (
        (["nobody@example.com", "--business", "acme"], "No customer with the email"),
        (["ana@example.com", "--business", "nobody"], "No business with the id 'nobody'"),
        (["ana@example.com", "--business", "acme", "--mode", "live"], "(live mode)"),
        (["not an email", "--business", "acme"], "No customer with the email"),
    ):
        result = run(app, "invite", *args)
        assert result.exit_code != 0, args
        assert message in result.output, result.output
        assert "Traceback" not in result.output


def test_invite_uses_the_default_mode(
    database_url: str, app_factory: Callable[..., Flask], business: m.Business
) -> None:
    """Without --mode, invite works in CUSTOMER_PORTAL_DEFAULT_MODE (T5: links bound to a mode)."""
    live_app = app_factory(database_url, CUSTOMER_PORTAL_DEFAULT_MODE="live")
    with live_app.app_context():
        acme = portal.get_business("acme")
        assert acme is not None
        portal.upsert_customer(acme, "bo@example.com")
    result = run(live_app, "invite", "bo@example.com", "--business", "acme", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dynamic_link"].startswith(
        f"{EXTERNAL_URL}/portal/login/acme/"
    )
    test_mode = run(live_app, "invite", "bo@example.com", "--business", "acme", "--mode", "test")
    assert test_mode.exit_code != 0


def test_revoke_sessions_signs_the_customer_out_everywhere(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    """T11: the merchant's revoke ends the session on the server."""
    assert "ana@example.com" in client.get("/portal/").text
    other = app.test_client()
    sign_in_with_link(other, signed_in)

    result = run(app, "revoke-sessions", "ana@example.com", "--business", "acme")
    assert result.exit_code == 0, result.output
    assert "Ended 2 sessions of ana@example.com" in result.output
    for browser in (client, other):
        page = browser.get("/portal/")
        assert page.status_code != 200 and "ana@example.com" not in page.text

    again = run(app, "revoke-sessions", "ana@example.com", "--business", "acme")
    assert "Ended 0 sessions" in again.output
    unknown = run(app, "revoke-sessions", "nobody@example.com", "--business", "acme")
    assert unknown.exit_code != 0 and "No customer" in unknown.output


def test_send_mail_sends_the_queued_mail_and_counts(
    database_url: str, app_factory: Callable[..., Flask], customer: m.Customer
) -> None:
    """M1: queued mail goes out once when the command runs; the mailed link works."""
    local = app_factory(database_url, CUSTOMER_PORTAL_MAIL_BACKEND="local")
    portal.create_portal_session(customer, send_email=True)

    result = run(local, "send-mail")
    assert result.exit_code == 0, result.output
    assert "Sent 1 message; 0 failed." in result.output
    with local.app_context():
        messages: list[dict[str, Any]] = outbox.local_messages()
    assert [message["recipient"] for message in messages] == ["ana@example.com"]
    link = re.search(rf"{re.escape(EXTERNAL_URL)}/portal/test/login/acme/\S+", messages[0]["text"])
    assert link
    assert open_link(local.test_client(), link.group()).status_code == 303

    assert "Sent 0 messages; 0 failed." in run(local, "send-mail").output


def test_send_mail_reports_failures(
    database_url: str, app_factory: Callable[..., Flask], customer: m.Customer, session: Session
) -> None:
    """M1: a mail server that is down counts as failed; the message waits for a retry."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    down = app_factory(
        database_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=closed_port, MAIL_SUPPRESS_SEND=False
    )
    portal.create_portal_session(customer, send_email=True)

    result = run(down, "send-mail")
    assert result.exit_code == 0, result.output
    assert "Sent 0 messages; 1 failed." in result.output
    message = session.scalars(sa.select(m.OutboxMessage)).one()
    assert (message.status, message.attempts) == ("pending", 1)


def test_end_cancellations_ends_what_is_due(app: Flask, subscription: m.Subscription) -> None:
    """A cron's `flask portal end-cancellations` ends plans cancelled at period end."""
    import time_machine

    portal.cancel_subscription(subscription, at_period_end=True)
    runner = app.test_cli_runner()
    assert "Ended 0 subscriptions." in runner.invoke(args=["portal", "end-cancellations"]).output
    with time_machine.travel(subscription.current_period_end + timedelta(seconds=1)):
        result = runner.invoke(args=["portal", "end-cancellations"])
    assert "Ended 1 subscription." in result.output
    app.extensions["customer_portal"].session.refresh(subscription)
    assert subscription.status == "cancelled"


def test_purge_deletes_what_ended_over_the_retention_period_and_says_how_much(
    app: Flask, client: FlaskClient, customer: m.Customer, session: Session
) -> None:
    """Retention: a sign-in and an emailed link of 32 days ago go; today's sign-in stays."""
    import time_machine

    with time_machine.travel(datetime.now(UTC) - timedelta(days=32), tick=False):
        assert sign_in_with_link(client, customer).status_code == 303
        portal.create_portal_session(customer, send_email=True)
        assert run(app, "send-mail").output.startswith("Sent 1 message;")
    assert sign_in_with_link(client, customer).status_code == 303

    result = run(app, "purge")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Deleted what ended more than 30 days ago:\n"
        "  used or expired links:     3\n"  # the used one, the shared one, the emailed one
        "  ended portal sessions:     1\n"
        "  sent or dropped messages:  1\n"
        "  rendered documents:        0\n"
    )
    session.expire_all()
    today = datetime.now(UTC) - timedelta(days=1)
    assert [link.used_at > today for link in session.scalars(sa.select(m.LoginLink))] == [True]
    assert [s.created_at > today for s in session.scalars(sa.select(m.PortalSession))] == [True]
    assert session.scalars(sa.select(m.OutboxMessage)).all() == []
    assert "links:     0" in run(app, "purge").output
