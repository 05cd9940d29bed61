"""Running the portal: the health check, the client IP behind proxies, retention, the license."""

from __future__ import annotations

import hashlib
import socket
import tomllib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal import retention
from flask_customer_portal.db import utcnow

from .conftest import csrf_token

HEALTH = "/portal/health"
LOGIN = "/portal/test/login/acme"


def closed_port() -> int:
    """Return a local TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- The health check --------------------------------------------------------------------


def test_health_answers_ok_to_anyone_and_is_never_cached(app: Flask, client: FlaskClient) -> None:
    """A load balancer asks without signing in, without a CSRF token, and without a cookie."""
    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_health_is_not_rate_limited(app_factory: Callable[..., Flask], database_url: str) -> None:
    """Not even by a default limit the host sets for every route (RATELIMIT_DEFAULT)."""
    app = app_factory(database_url, RATELIMIT_DEFAULT="2 per minute")
    client = app.test_client()
    assert [client.get(HEALTH).status_code for _ in range(5)] == [200] * 5


def test_health_answers_503_when_the_database_is_gone(
    app_factory: Callable[..., Flask], database_url: str, tmp_path: Path
) -> None:
    """SQLite: the file was deleted. PostgreSQL: nothing listens on the server's port."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        app = app_factory(database_url)
        assert app.test_client().get(HEALTH).status_code == 200
        Path(str(url.database)).unlink()
        app.extensions["customer_portal"].engine.dispose()
    else:
        app = app_factory(url.set(port=closed_port()).render_as_string(hide_password=False))
    response = app.test_client().get(HEALTH)
    assert response.status_code == 503
    # What fails, never why: no error text, no versions.
    assert response.get_json() == {"status": "unavailable", "failing": ["database"]}
    assert response.headers["Cache-Control"] == "no-store"


def test_health_answers_503_when_the_rate_limit_storage_is_gone(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    app = app_factory(
        database_url, CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{closed_port()}"
    )
    response = app.test_client().get(HEALTH)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "failing": ["rate_limit_storage"]}


# -- The client IP behind proxies (T9) ---------------------------------------------------


def login_requests(app: Flask) -> Callable[[str], int]:
    """Return a function that asks for a sign-in link as if through a proxy at 10.0.0.1.

    It takes the ``X-Forwarded-For`` header the proxy sends on and returns the status.
    """
    with app.app_context():
        portal.create_business("Acme Cloud", public_id="acme")
    client = app.test_client()
    token = csrf_token(client.get(LOGIN).text)
    asked = iter(range(1000))

    def ask(forwarded_for: str) -> int:
        return client.post(
            LOGIN,
            data={"csrf_token": token, "email": f"customer{next(asked)}@example.com"},
            headers={"X-Forwarded-For": forwarded_for},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        ).status_code

    return ask


def test_behind_one_proxy_each_client_has_its_own_login_limit(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    app = app_factory(
        database_url,
        CUSTOMER_PORTAL_PROXY_HOPS=1,
        CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_IP="2 per minute",
    )
    ask = login_requests(app)
    assert [ask("198.51.100.1"), ask("198.51.100.1"), ask("198.51.100.1")] == [200, 200, 429]
    assert ask("198.51.100.2") == 200
    # A client's own X-Forwarded-For is not believed: the proxy appends the real address.
    assert ask("198.51.100.2, 198.51.100.1") == 429


def test_without_proxy_hops_x_forwarded_for_is_ignored(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """Every request counts against the address that connected: a client cannot pick its own."""
    app = app_factory(database_url, CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_IP="2 per minute")
    ask = login_requests(app)
    assert [ask("198.51.100.1"), ask("198.51.100.2"), ask("198.51.100.3")] == [200, 200, 429]


# -- Retention ---------------------------------------------------------------------------


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def test_purge_deletes_only_what_ended_before_the_retention_period(
    app: Flask, session: Session, customer: m.Customer
) -> None:
    """Used or expired links, ended sessions, sent or dropped mail, rendered documents: older
    than 30 days only."""
    now = utcnow()

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    owner = {"business_id": customer.business_id, "mode": "test", "customer_id": customer.id}
    links = {
        "used long ago": (ago(40), ago(39), ago(40)),
        "expired long ago": (ago(41), ago(31), None),
        "used lately": (ago(10), ago(9), ago(10)),
        "expired lately": (ago(2), ago(1), None),
        "usable": (ago(0.1), ago(-1), None),
        "made long ago, still usable": (ago(40), ago(-1), None),
    }
    for label, (created, expires, used) in links.items():
        session.add(
            m.LoginLink(
                token_hash=digest(label),
                purpose="portal_session",
                created_at=created,
                expires_at=expires,
                used_at=used,
                **owner,
            )
        )
    sessions = {
        "revoked long ago": (ago(40), ago(39), ago(40)),
        "expired long ago": (ago(35), ago(34), None),
        "revoked lately": (ago(3), ago(2), ago(2)),
        "open": (ago(0.1), ago(-1), None),
        "opened long ago, still open": (ago(40), ago(-1), None),
    }
    for label, (created, expires, revoked) in sessions.items():
        session.add(
            m.PortalSession(
                token_hash=digest(label),
                created_at=created,
                last_seen_at=created,
                expires_at=expires,
                revoked_at=revoked,
                **owner,
            )
        )
    messages = {
        "sent long ago": ("sent", ago(40)),
        "dropped long ago": ("dropped", ago(40)),
        "sent lately": ("sent", ago(5)),
        "pending": ("pending", None),
        "failed": ("failed", None),
    }
    for label, (status, sent) in messages.items():
        session.add(
            m.OutboxMessage(
                recipient=f"{digest(label)[:8]}@example.com",
                kind="login_link",
                params={},
                status=status,
                created_at=ago(41),
                sent_at=sent,
            )
        )
    documents = {"rendered long ago": ago(31), "rendered lately": ago(29)}
    for label, rendered in documents.items():
        session.add(
            m.StoredDocument(
                key=digest(label), media_type="application/pdf", body=b"%PDF", created_at=rendered
            )
        )
    session.commit()
    commits = []
    event.listen(session, "after_commit", commits.append)

    assert retention.purge() == retention.Purged(links=2, sessions=2, messages=2, documents=1)
    assert len(commits) == 1
    session.expire_all()
    kept_links = set(session.scalars(sa.select(m.LoginLink.token_hash)))
    assert kept_links == {digest(label) for label in list(links)[2:]}
    kept_sessions = set(session.scalars(sa.select(m.PortalSession.token_hash)))
    assert kept_sessions == {digest(label) for label in list(sessions)[2:]}
    kept_messages = set(session.scalars(sa.select(m.OutboxMessage.recipient)))
    assert kept_messages == {f"{digest(label)[:8]}@example.com" for label in list(messages)[2:]}
    kept_documents = set(session.scalars(sa.select(m.StoredDocument.key)))
    assert kept_documents == {digest("rendered lately")}


def test_purge_follows_the_retention_setting(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    app = app_factory(database_url, CUSTOMER_PORTAL_RETENTION_DAYS=1)
    with app.app_context():
        business = portal.create_business("Acme Cloud", public_id="acme")
        customer = portal.upsert_customer(business, "ana@example.com")
        session = app.extensions["customer_portal"].session
        now = utcnow()
        session.add(
            m.LoginLink(
                token_hash=digest("expired two days ago"),
                purpose="email_login",
                business_id=business.id,
                mode="test",
                customer_id=customer.id,
                created_at=now - timedelta(days=3),
                expires_at=now - timedelta(days=2),
            )
        )
        session.commit()
        assert retention.purge() == retention.Purged(links=1, sessions=0, messages=0, documents=0)


# -- The distribution --------------------------------------------------------------------


def test_the_license_file_is_the_license_the_package_declares() -> None:
    """Whoever gets the source or the wheel gets the BSD-3-Clause text pyproject.toml names."""
    root = Path(__file__).parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["license"] == {"text": "BSD-3-Clause"}
    text = (root / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert "Copyright (c) 2026, the flask-customer-portal authors" in text
    assert "3. Neither the name of the copyright holder" in text
    # flit_core before 3.12 puts it in the wheel only, unless the sdist is told.
    assert "LICENSE" in project["tool"]["flit"]["sdist"]["include"]
