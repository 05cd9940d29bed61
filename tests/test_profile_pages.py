"""The profile page: name, phone and a confirmed email change (Z2, C1, V2, T5, T6, T7, T11, T12)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

import flask_customer_portal as portal
from flask_customer_portal import emails, outbox, signals
from flask_customer_portal import models as m

from .conftest import EXTERNAL_URL, csrf_token, local_mail_app, open_link, sign_in_with_link
from .helpers import Received, form_token, record_signals, signalled

PROFILE = "/portal/profile"
LOGIN = "/portal/test/login/acme"
NEW = "ana.new@example.com"
CONFIRM_LINK = re.compile(re.escape(EXTERNAL_URL) + r"(/portal/test/profile/email/acme/[\w.-]+)")


app = local_mail_app  # keeps sent mail in memory (replaces conftest's ``app``)


def post_profile(client: FlaskClient, **fields: str) -> TestResponse:
    """Submit the profile form like a person: what the page shows, with ``fields`` changed."""
    page = client.get(PROFILE).text
    form = {name: shown_value(page, name) for name in ("name", "email", "phone")}
    return client.post(PROFILE, data={**form, **fields, "csrf_token": csrf_token(page)})


def shown_value(page: str, name: str) -> str:
    match = re.search(rf'<input id="cp-{name}" [^>]*value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match[1]


def sent_mail() -> dict[str, dict[str, Any]]:
    """Send the outbox; return the messages the local back-end kept, by recipient."""
    emails.send_queued()
    return {message["recipient"]: message for message in outbox.local_messages()}


def confirm_path(message: dict[str, Any]) -> str:
    match = CONFIRM_LINK.search(message["text"])
    assert match, message["text"]
    assert match[0] in message["html"]
    return match[1]


@pytest.fixture
def received(app: Flask) -> Iterator[Received]:
    """What the profile signals sent, as (name, keyword arguments by public id)."""
    named = {"profile_updated": signals.profile_updated, "email_changed": signals.email_changed}
    with record_signals(app, named) as seen:
        yield seen


def test_the_profile_shows_the_customers_details(
    client: FlaskClient, signed_in: m.Customer
) -> None:
    """Name, email and phone, the phone written the way people write it."""
    portal.upsert_customer(signed_in.business, signed_in.email, phone="+5511987654321")
    page = client.get(PROFILE)
    assert page.status_code == 200
    assert 'value="Ana Souza"' in page.text
    assert 'value="ana@example.com"' in page.text
    assert 'value="+55 11 98765-4321"' in page.text
    assert 'aria-current="page"' in page.text


def test_name_and_phone_change_and_the_phone_is_stored_in_e164(
    client: FlaskClient,
    signed_in: m.Customer,
    session: Session,
    received: Received,
) -> None:
    """Save → 303 back with "Saved"; ``profile_updated`` names only what changed."""
    response = post_profile(client, name="Ana Maria Souza", phone="+55 (11) 98765-4321")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{PROFILE}?saved=1"
    session.refresh(signed_in)
    assert (signed_in.name, signed_in.phone) == ("Ana Maria Souza", "+5511987654321")
    page = client.get(response.headers["Location"]).text
    assert "Saved." in page and 'value="+55 11 98765-4321"' in page

    (event,) = signalled(received, "profile_updated")
    assert event["customer"] == signed_in.public_id
    assert event["changes"] == {
        "name": ("Ana Souza", "Ana Maria Souza"),
        "phone": (None, "+5511987654321"),
    }
    assert post_profile(client).status_code == 303
    assert len(signalled(received, "profile_updated")) == 1, "no signal when nothing changed"


def test_an_invalid_phone_saves_nothing_and_says_so_next_to_the_field(
    client: FlaskClient,
    signed_in: m.Customer,
    session: Session,
    received: Received,
) -> None:
    """A bad field is described next to it; the valid name in the same form is not saved."""
    response = post_profile(client, name="Ana Maria", phone="12345")
    assert response.status_code == 400
    assert "Nothing was saved" in response.text
    assert 'aria-invalid="true" aria-describedby="cp-phone-hint cp-phone-error"' in response.text
    assert '<p id="cp-phone-error" class="cp-error">Phone is not' in response.text
    assert 'value="Ana Maria"' in response.text, "what was typed stays in the form"
    session.refresh(signed_in)
    assert (signed_in.name, signed_in.phone) == ("Ana Souza", None)
    assert signalled(received, "profile_updated") == []


def test_only_the_profile_fields_can_change(
    client: FlaskClient, signed_in: m.Customer, business: m.Business, session: Session
) -> None:
    """Z2: fields that are not on the form are ignored, whatever they are called."""
    other = portal.create_business("Other Co", public_id="other")
    before = {
        column: getattr(signed_in, column)
        for column in ("id", "public_id", "business_id", "mode", "email", "locale", "created_at")
    }
    response = post_profile(
        client,
        name="Ana",
        id="999",
        public_id="cus_stolen",
        business_id=str(other.id),
        mode="live",
        locale="pt_BR",
        created_at="2000-01-01",
        customer_id="1",
    )
    assert response.status_code == 303
    session.refresh(signed_in)
    assert signed_in.name == "Ana"
    assert {column: getattr(signed_in, column) for column in before} == before


def test_the_profile_form_needs_its_csrf_token(
    client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    """C1: without the token, 400 and nothing changes."""
    response = client.post(PROFILE, data={"name": "Mallory", "email": "evil@example.com"})
    assert response.status_code == 400
    session.refresh(signed_in)
    assert (signed_in.name, signed_in.email) == ("Ana Souza", "ana@example.com")
    assert session.scalar(sa.select(sa.func.count()).select_from(m.OutboxMessage)) == 0


def test_a_name_with_markup_renders_escaped(client: FlaskClient, signed_in: m.Customer) -> None:
    """V2: an XSS payload saved as the name comes back as text."""
    payload = '<script>alert("x")</script>'
    assert post_profile(client, name=payload).status_code == 303
    page = client.get(PROFILE).text
    assert payload not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_a_new_email_is_confirmed_from_the_new_address(
    app: Flask,
    client: FlaskClient,
    signed_in: m.Customer,
    session: Session,
    received: Received,
) -> None:
    """Z2, T5, T6, T7, T11: the new address gets a link, the old one a notice; confirming
    changes the email, revokes outstanding sign-in links and ends every other session."""
    outstanding = portal.create_portal_session(signed_in)
    response = post_profile(client, email=NEW.upper())
    assert response.status_code == 303
    assert response.headers["Location"] == f"{PROFILE}?saved=1&email=sent"
    assert (
        "open the link we sent to the new address" in client.get(response.headers["Location"]).text
    )
    session.refresh(signed_in)
    assert signed_in.email == "ana@example.com", "nothing changes before confirmation"

    messages = sent_mail()
    assert set(messages) == {NEW, "ana@example.com"}
    path = confirm_path(messages[NEW])
    notice = messages["ana@example.com"]
    assert NEW in notice["text"] and NEW in notice["html"]
    assert EXTERNAL_URL not in notice["text"] + notice["html"], "the notice carries no link"
    assert "/login/" not in path

    # The link is opened in the mail app's browser, where nobody is signed in.
    phone = app.test_client()
    page = phone.get(path)
    assert phone.get(path).status_code == 200, "GET never uses the link (T6)"
    assert "Confirm your new email" in page.text and NEW in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    confirmed = phone.post(path, data={"csrf_token": csrf_token(page.text)})
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == f"{PROFILE}?email=changed"
    assert confirmed.headers["Referrer-Policy"] == "no-referrer"

    session.refresh(signed_in)
    assert signed_in.email == NEW
    assert NEW in phone.get(confirmed.headers["Location"]).text, "this browser is signed in"
    assert client.get(PROFILE).status_code == 302, "the other session ended (T11)"
    assert client.get(outstanding.url.removeprefix(EXTERNAL_URL)).status_code == 410, "T5"
    (event,) = signalled(received, "email_changed")
    assert (event["customer"], event["old_email"], event["new_email"]) == (
        signed_in.public_id,
        "ana@example.com",
        NEW,
    )
    assert signalled(received, "profile_updated") == [], "the email is not a profile update"

    again = phone.get(path)
    assert again.status_code == 410
    assert "expired or was already used" in again.text
    reused = phone.post(path, data={"csrf_token": form_token(phone, LOGIN)})
    assert reused.status_code == 410 and "expired or was already used" in reused.text


def test_an_email_change_link_is_bound_to_its_business_mode_and_purpose(
    app: Flask, client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    """T5: the token opens nothing under another business, another mode, or as a sign-in link."""
    portal.create_business("Other Co", public_id="other")
    assert post_profile(client, email=NEW).status_code == 303
    path = confirm_path(sent_mail()[NEW])
    token = path.rsplit("/", 1)[1]
    browser = app.test_client()
    for wrong in (
        f"/portal/test/profile/email/other/{token}",
        f"/portal/profile/email/acme/{token}",
        f"/portal/test/login/acme/{token}",
    ):
        assert browser.get(wrong).status_code == 410, wrong
        assert (
            browser.post(wrong, data={"csrf_token": form_token(browser, LOGIN)}).status_code == 410
        )
    session.refresh(signed_in)
    assert signed_in.email == "ana@example.com"
    assert open_link(browser, EXTERNAL_URL + path).status_code == 303


def test_a_newer_request_replaces_an_older_one(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    """A typo'd first address cannot confirm once a second change was asked for."""
    assert post_profile(client, email="ana.typo@example.com").status_code == 303
    first = confirm_path(sent_mail()["ana.typo@example.com"])
    assert post_profile(client, email=NEW).status_code == 303
    sent_mail()
    assert app.test_client().get(first).status_code == 410


def test_two_requests_sent_together_leave_only_the_newer_link(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    """Both requests are still in the outbox when the mail goes out: only the last counts."""
    assert post_profile(client, email="ana.typo@example.com").status_code == 303
    assert post_profile(client, email=NEW).status_code == 303
    mailed = sent_mail()
    assert app.test_client().get(confirm_path(mailed["ana.typo@example.com"])).status_code == 410
    assert app.test_client().get(confirm_path(mailed[NEW])).status_code == 200


def test_an_expired_confirmation_link_is_refused(
    app: Flask, client: FlaskClient, customer: m.Customer, session: Session
) -> None:
    """T4, T12: the link lives LOGIN_LINK_TTL (30 minutes) from when it is mailed."""
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        sign_in_with_link(client, customer)
        assert post_profile(client, email=NEW).status_code == 303
        path = confirm_path(sent_mail()[NEW])
    browser = app.test_client()
    with time_machine.travel(start + timedelta(minutes=30, seconds=1), tick=False):
        assert browser.get(path).status_code == 410
        assert (
            browser.post(path, data={"csrf_token": form_token(browser, LOGIN)}).status_code == 410
        )
    session.refresh(customer)
    assert customer.email == "ana@example.com"


def test_an_address_of_another_customer_is_refused(
    client: FlaskClient, signed_in: m.Customer, business: m.Business, session: Session
) -> None:
    """Another customer of the same business and mode has it: a clear message, nothing sent."""
    portal.upsert_customer(business, "bruno@example.com")
    response = post_profile(client, email="Bruno@Example.com", name="Ana S.")
    assert response.status_code == 400
    assert '<p id="cp-email-error" class="cp-error">Email address belongs to another account' in (
        response.text
    )
    session.refresh(signed_in)
    assert (signed_in.email, signed_in.name) == ("ana@example.com", "Ana Souza")
    assert session.scalar(sa.select(sa.func.count()).select_from(m.OutboxMessage)) == 0


def test_an_address_taken_before_confirmation_gets_a_clear_page(
    app: Flask, client: FlaskClient, signed_in: m.Customer, business: m.Business, session: Session
) -> None:
    """The address went to another customer meanwhile: the email stays, the link is used up."""
    assert post_profile(client, email=NEW).status_code == 303
    path = confirm_path(sent_mail()[NEW])
    portal.upsert_customer(business, NEW)
    browser = app.test_client()
    page = browser.get(path)
    response = browser.post(path, data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 409
    assert "belongs to another account" in response.text
    session.refresh(signed_in)
    assert signed_in.email == "ana@example.com"
    assert client.get(PROFILE).status_code == 200, "nobody was signed out"
    assert browser.get(path).status_code == 410


def test_an_email_change_needs_a_recent_sign_in(
    client: FlaskClient, customer: m.Customer, session: Session
) -> None:
    """T12: 16 minutes after signing in, the change is refused with a way to sign in again;
    nothing in the form is saved and no mail is queued."""
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        sign_in_with_link(client, customer)
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        response = post_profile(client, email=NEW, name="Ana S.")
    assert response.status_code == 400
    assert "can only be changed soon after you sign in" in response.text
    assert '<a href="/portal/test/login/acme">Sign in again</a>' in response.text
    session.refresh(customer)
    assert (customer.email, customer.name) == ("ana@example.com", "Ana Souza")
    assert session.scalar(sa.select(sa.func.count()).select_from(m.OutboxMessage)) == 0
