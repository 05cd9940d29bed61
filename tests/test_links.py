"""Signed single-use links: the signature is checked first, the row stays the truth.

A link's token is signed with the app's secret key (a salt per purpose) and
carries the random id of its single-use row. These tests prove what the
signature adds to T1-T7: a forged, tampered, foreign or too-old token is
refused without a query of the links table, and a key rotation with
``SECRET_KEY_FALLBACKS`` keeps outstanding links working (O1).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import links
from flask_customer_portal import models as m

from .conftest import EXTERNAL_URL, csrf_token, open_link, single_use_id
from .helpers import counting

LOGIN = "/portal/test/login/acme"


def of_links(statements: list[str]) -> list[str]:
    """The statements among ``statements`` that touch the links table."""
    return [statement for statement in statements if "portal_login_links" in statement]


def try_token(client: FlaskClient, token: str) -> tuple[int, int]:
    """Open a link's page, then press Continue; return both status codes."""
    page = client.get(f"{LOGIN}/{token}")
    pressed = client.post(f"{LOGIN}/{token}", data={"csrf_token": csrf_token(page.text)})
    return page.status_code, pressed.status_code


def test_a_forged_or_tampered_token_is_refused_before_any_query(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T4, T5: only a token this app signed, for this purpose, reaches the links table."""
    link = portal.create_portal_session(customer)
    token = link.url.rsplit("/", 1)[1]
    payload, timestamp, signature = token.split(".")
    other_purpose = URLSafeTimedSerializer(
        app.config["SECRET_KEY"], salt="customer-portal.email_change"
    ).dumps(single_use_id(token))
    forged = {
        "random": "x" * 43,
        "tampered signature": f"{payload}.{timestamp}.{signature[::-1]}",
        "other key": URLSafeTimedSerializer(
            "not-the-key", salt="customer-portal.portal_session"
        ).dumps(single_use_id(token)),
        "other purpose": other_purpose,
    }
    for name, bad in forged.items():
        with counting(app) as statements:
            assert try_token(client, bad) == (410, 410), name
        assert of_links(statements) == [], name
    with counting(app) as statements:
        assert try_token(client, token) == (200, 303)
    assert of_links(statements), "a good token is looked up: the check above can fail"


def test_a_token_older_than_its_link_is_refused_before_any_query(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T4: the signature's age is the link's lifetime (24 h for a dynamic link)."""
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        link = portal.create_portal_session(customer)
    token = link.url.rsplit("/", 1)[1]
    with time_machine.travel(start + timedelta(hours=24, seconds=1), tick=False):
        with counting(app) as statements:
            assert try_token(client, token) == (410, 410)
        assert of_links(statements) == []
    with time_machine.travel(start + timedelta(hours=24, seconds=-1), tick=False):
        assert try_token(client, token) == (200, 303)


def test_a_token_from_a_clock_a_little_ahead_still_opens(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """A link minted by another process whose clock runs ahead works at once: the row decides."""
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        link = portal.create_portal_session(customer)
    with time_machine.travel(start, tick=False):
        assert open_link(client, link.url).status_code == 303


@pytest.mark.parametrize("purpose", ["email_login", "portal_session"])
def test_links_survive_a_key_rotation_with_fallbacks(
    app: Flask, client: FlaskClient, customer: m.Customer, purpose: str
) -> None:
    """O1: links signed with the old key open while it is a fallback, and not after."""
    app.config["SECRET_KEY"] = "the-old-key"
    kept = links.new_link(customer, purpose)
    dropped = links.new_link(customer, purpose)
    app.extensions["customer_portal"].session.commit()
    app.config.update(SECRET_KEY="the-new-key", SECRET_KEY_FALLBACKS=["the-old-key"])
    assert open_link(client, kept.url).status_code == 303
    fresh = links.new_link(customer, purpose)
    app.extensions["customer_portal"].session.commit()
    newest = URLSafeTimedSerializer("the-new-key", salt=f"customer-portal.{purpose}")
    assert newest.loads(fresh.url.rsplit("/", 1)[1]) == single_use_id(fresh.url.rsplit("/", 1)[1])
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert client.get(dropped.url.removeprefix(EXTERNAL_URL)).status_code == 410
    assert open_link(client, fresh.url).status_code == 303, "signed with the new key"


def test_a_link_opens_once_however_it_is_signed(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T3: the signature proves where a token comes from; the row still says it was used."""
    link = portal.create_portal_session(customer)
    assert open_link(client, link.url).status_code == 303
    token = link.url.rsplit("/", 1)[1]
    assert try_token(client, token) == (410, 410)


def test_a_link_stops_at_the_very_second_it_expires(
    client: FlaskClient, customer: m.Customer
) -> None:
    """T4: a dynamic link opens until the second before its 24 hours are up, not at that second."""
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        link = portal.create_portal_session(customer)
    token = link.url.rsplit("/", 1)[1]
    with time_machine.travel(start + timedelta(hours=24), tick=False):
        assert try_token(client, token) == (410, 410)
    with time_machine.travel(start + timedelta(hours=24, seconds=-1), tick=False):
        assert try_token(client, token) == (200, 303)


def test_a_token_signed_with_the_key_but_not_by_the_portal_is_refused(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T5: a payload the portal never signs (not a link's id), even under its key, opens nothing."""
    signer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="customer-portal.portal_session")
    for payload in (["x" * 43], {"id": "x" * 43}, 42):
        assert try_token(client, signer.dumps(payload)) == (410, 410), payload


def test_an_email_change_revokes_only_the_customers_unused_links(
    app: Flask, client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    """T5: asking for a new email replaces only an earlier email-change link; confirming it
    revokes the customer's unused sign-in links. Another customer's links, and the record of
    a link already used, stay as they are."""
    bruno = portal.upsert_customer(signed_in.business, "bruno@example.com")
    bruno_link = portal.create_portal_session(bruno)
    used = portal.create_portal_session(signed_in)
    assert open_link(app.test_client(), used.url).status_code == 303
    used_row = sa.select(m.LoginLink.used_at).filter_by(
        token_hash=links.hash_token(single_use_id(used.url.rsplit("/", 1)[1]))
    )
    used_at = session.scalar(used_row)
    waiting = portal.create_portal_session(signed_in)
    earlier = links.new_link(signed_in, "email_change", new_email="ana.before@example.com")
    session.commit()

    def page(link: links.PortalLink) -> int:
        return client.get(link.url.removeprefix(EXTERNAL_URL)).status_code

    profile = client.get("/portal/profile")
    form = {"name": "Ana Souza", "email": "ana.new@example.com"}
    asked = client.post("/portal/profile", data={**form, "csrf_token": csrf_token(profile.text)})
    assert asked.status_code == 303
    assert page(earlier) == 410, "the newer request replaces it"
    assert (page(waiting), page(bruno_link)) == (200, 200)

    confirmation = links.new_link(signed_in, "email_change", new_email="ana.new@example.com")
    session.commit()
    assert open_link(app.test_client(), confirmation.url).status_code == 303

    assert (page(waiting), page(bruno_link)) == (410, 200)
    session.expire_all()
    assert session.scalar(used_row) == used_at
