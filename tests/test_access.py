"""Getting into the portal: links, sessions, and keeping everybody else out."""

from __future__ import annotations

import io
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

import flask_customer_portal as portal
from flask_customer_portal import access, links
from flask_customer_portal import models as m

from .conftest import EXTERNAL_URL, csrf_token, open_link, sign_in_with_link, single_use_id
from .helpers import stored_rows

LOGIN = "/portal/test/login/acme"


def path_of(link: portal.PortalLink) -> str:
    return link.url.removeprefix(EXTERNAL_URL)


def test_tokens_are_long_random_and_distinct() -> None:
    """T1: 10,000 tokens, all different, each carrying 256 bits."""
    tokens = {links.new_token() for _ in range(10_000)}
    assert len(tokens) == 10_000
    assert all(len(token) >= 43 for token in tokens)


def test_a_dynamic_link_signs_in_once(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T3, T6, T7: GET and HEAD never use the link; one POST does, then 303 without it."""
    link = portal.create_portal_session(customer)
    assert link.url.startswith(f"{EXTERNAL_URL}/portal/test/login/acme/")
    assert link.expires_at - datetime.now(UTC) > timedelta(hours=23, minutes=59)
    first = client.get(path_of(link))
    assert client.get(path_of(link)).status_code == 200
    assert client.head(path_of(link)).status_code == 200
    assert "Continue to your account" in first.text
    assert first.headers["Referrer-Policy"] == "no-referrer"
    assert first.headers["Cache-Control"] == "no-store"

    opened = client.post(path_of(link), data={"csrf_token": csrf_token(first.text)})
    assert opened.status_code == 303
    assert opened.headers["Location"] == "/portal/"
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    home = client.get("/portal/")
    assert home.status_code == 200 and "ana@example.com" in home.text

    reopened = client.get(path_of(link))
    assert reopened.status_code == 410
    again = client.post(path_of(link), data={"csrf_token": csrf_token(reopened.text)})
    assert again.status_code == 410
    assert "expired or was already used" in again.text


def test_used_expired_and_unknown_links_land_on_one_friendly_page(
    client: FlaskClient, customer: m.Customer
) -> None:
    """The page offers a new link by email for that business."""
    used = portal.create_portal_session(customer)
    open_link(client, used.url)
    client.post("/portal/logout", data={"csrf_token": csrf_token(client.get("/portal/").text)})
    with time_machine.travel(datetime.now(UTC) - timedelta(days=2)):
        expired_link = portal.create_portal_session(customer)
    pages = [
        client.get(path_of(used)),
        client.get(path_of(expired_link)),
        client.get(LOGIN + "/not-a-real-token"),
    ]
    for page in pages:
        assert page.status_code == 410
        assert "expired or was already used" in page.text
        assert f'action="{LOGIN}"' in page.text


@pytest.mark.parametrize("purpose", ["email_login", "portal_session"])
def test_links_expire_on_the_database_clock(
    app: Flask, client: FlaskClient, customer: m.Customer, session: Session, purpose: str
) -> None:
    """T4: valid at TTL - 1 s, refused at TTL + 1 s."""
    ttl = timedelta(minutes=30) if purpose == "email_login" else timedelta(hours=24)
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        link = links.new_link(customer, purpose)
        session.commit()
    with time_machine.travel(start + ttl - timedelta(seconds=1), tick=False):
        assert client.get(path_of(link)).status_code == 200
    with time_machine.travel(start + ttl + timedelta(seconds=1), tick=False):
        page = client.get(path_of(link))
        assert page.status_code == 410
        assert (
            client.post(path_of(link), data={"csrf_token": csrf_token(page.text)}).status_code
            == 410
        )
    with time_machine.travel(start + ttl - timedelta(seconds=1), tick=False):
        assert open_link(client, link.url).status_code == 303


def test_a_link_is_bound_to_its_business_mode_and_purpose(
    app: Flask, client: FlaskClient, customer: m.Customer, session: Session
) -> None:
    """T5: the same token under another business, another mode or for another purpose
    opens nothing."""
    portal.create_business("Other Co", public_id="other")
    link = portal.create_portal_session(customer)
    token = link.url.rsplit("/", 1)[1]
    for path in (f"/portal/test/login/other/{token}", f"/portal/login/acme/{token}"):
        page = client.get(path)
        assert page.status_code == 410
        assert client.post(path, data={"csrf_token": csrf_token(page.text)}).status_code == 410
    session.execute(sa.update(m.LoginLink).values(purpose="email_change"))
    session.commit()
    assert client.get(path_of(link)).status_code == 410
    session.execute(sa.update(m.LoginLink).values(purpose="portal_session"))
    session.commit()
    assert open_link(client, link.url).status_code == 303


def test_tokens_are_stored_only_as_hashes_and_never_logged(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """T2, T7: neither the database nor the log holds a raw token."""
    caplog.set_level(logging.DEBUG)
    link = portal.create_portal_session(customer)
    token = link.url.rsplit("/", 1)[1]
    open_link(client, link.url)
    session_token = client.get_cookie("session")
    assert session_token is not None
    secret = single_use_id(token)
    for table, row in stored_rows(session):
        assert token not in row, table
        assert secret not in row, table
    assert token not in caplog.text and secret not in caplog.text
    stored = session.scalars(sa.select(m.LoginLink.token_hash)).one()
    assert stored == links.hash_token(secret)


@pytest.mark.postgresql_only
def test_twenty_concurrent_posts_of_one_link_open_one_session(
    app: Flask, customer: m.Customer, session: Session
) -> None:
    """T3: one conditional UPDATE decides; the other nineteen get the friendly page."""
    link = portal.create_portal_session(customer)
    path = path_of(link)
    clients = [app.test_client() for _ in range(20)]
    for index, each in enumerate(clients):
        each.environ_base["REMOTE_ADDR"] = f"10.0.0.{index}"
    forms = [{"csrf_token": csrf_token(c.get(path).text)} for c in clients]
    barrier = threading.Barrier(20)
    codes: list[int] = []

    def post(index: int) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            codes.append(clients[index].post(path, data=forms[index]).status_code)

        return run

    threads = [threading.Thread(target=post(i)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [303] + [410] * 19
    assert session.scalar(sa.select(sa.func.count()).select_from(m.PortalSession)) == 1


def test_sign_in_starts_a_fresh_session(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T10: a value planted in the session before sign-in is gone after it."""
    with client.session_transaction() as planted:
        planted["_customer_portal"] = "attacker-chosen"
        planted["planted"] = "yes"
    sign_in_with_link(client, customer)
    with client.session_transaction() as after:
        assert "planted" not in after
        assert after["_customer_portal"] != "attacker-chosen"


def test_sign_out_ends_the_session_on_the_server(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    """T11: a copied cookie replayed after sign-out is refused."""
    copied = client.get_cookie("session")
    assert copied is not None
    page = client.get("/portal/")
    out = client.post("/portal/logout", data={"csrf_token": csrf_token(page.text)})
    assert out.status_code == 303
    assert out.headers["Location"] == f"{LOGIN}?signed_out=1"
    thief = app.test_client()
    thief.set_cookie("session", copied.value)
    replay = thief.get("/portal/")
    assert replay.status_code == 302
    assert "ana@example.com" not in replay.text


def test_the_merchant_can_revoke_every_session(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    """T11: revoke_sessions ends the customer's sessions at once."""
    assert client.get("/portal/").status_code == 200
    assert portal.revoke_sessions(signed_in) == 1
    assert client.get("/portal/").headers["Location"] == f"{LOGIN}?expired=True"


def test_sessions_end_after_their_lifetime_and_when_idle(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T12: absolute and idle time-outs, from the server-side record."""
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        sign_in_with_link(client, customer)
    for hours in range(1, 24):
        with time_machine.travel(start + timedelta(hours=hours), tick=False):
            assert client.get("/portal/").status_code == 200
    with time_machine.travel(start + timedelta(hours=24, seconds=1), tick=False):
        assert client.get("/portal/").status_code == 302

    with time_machine.travel(start, tick=False):
        sign_in_with_link(client, customer)
    with time_machine.travel(start + timedelta(hours=1, minutes=59), tick=False):
        assert client.get("/portal/").status_code == 200
    with time_machine.travel(start + timedelta(hours=3, minutes=58), tick=False):
        assert client.get("/portal/").status_code == 200
    with time_machine.travel(start + timedelta(hours=6), tick=False):
        assert client.get("/portal/").status_code == 302


def test_a_recent_sign_in_is_told_apart(app: Flask, customer: m.Customer) -> None:
    """T12: sensitive actions can ask for a sign-in of the last 15 minutes."""
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        opened = access.start_session(customer)
        portal_session = access.load_session(opened.token)
        assert portal_session is not None and portal_session.id == opened.session.id
        assert portal_session is not None and access.is_recent(portal_session)
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert not access.is_recent(portal_session)


def test_the_static_login_page_and_the_test_mode_banner(
    client: FlaskClient, business: m.Business
) -> None:
    test_page = client.get(LOGIN)
    assert test_page.status_code == 200
    assert "Sign in to your Acme Cloud account" in test_page.text
    assert "Test mode" in test_page.text
    live_page = client.get("/portal/login/acme")
    assert live_page.status_code == 200 and "Test mode" not in live_page.text
    assert client.get("/portal/test/login/nobody").status_code == 404


def test_a_return_url_becomes_a_button(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    link = portal.create_portal_session(customer, return_url=f"{EXTERNAL_URL}/account")
    open_link(client, link.url)
    page = client.get("/portal/")
    assert f'href="{EXTERNAL_URL}/account"' in page.text
    assert "Return to Acme Cloud" in page.text
    with pytest.raises(portal.ValidationError, match="return_url"):
        portal.create_portal_session(customer, return_url="https://evil.example.net/")
    with pytest.raises(portal.ValidationError, match="return_url"):
        portal.create_portal_session(customer, return_url="javascript:alert(1)")


def test_every_post_route_refuses_a_missing_csrf_token(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    """C1: a walk over every POST route of the portal's pages, without a token: 400.

    The HTTP API (a bearer key) and the provider webhooks (a signature) take no
    cookie, so no token either; their own tests refuse requests without those.
    """
    token = "x" * 43
    values = {"business_id": "acme", "token": token, "mode": "test"}
    walked = 0
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.endpoint.startswith(
            ("customer_portal_api.", "customer_portal_webhooks.")
        ):
            continue
        path = rule.build({k: values.get(k, "x") for k in rule.arguments}, append_unknown=False)
        assert path is not None
        response = client.post(path[1], data={"email": "ana@example.com"})
        assert response.status_code == 400, rule.rule
        walked += 1
    assert walked >= 5
    assert client.get("/portal/").status_code == 200


def test_pages_send_security_headers_and_a_hardened_cookie(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """C2, C3: HttpOnly, SameSite=Lax cookie; CSP with frame-ancestors 'none'; nosniff."""
    page = client.get(LOGIN)
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "form-action 'self';" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    opened = sign_in_with_link(client, customer)
    cookie = opened.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_unknown_portal_paths_get_the_portals_404_page_with_its_headers(
    app: Flask, client: FlaskClient, business: m.Business
) -> None:
    """C3, V3: a path under the portal's prefix that leads nowhere is the portal's own 404
    page with its CSP, and a wrong method its 405; the host's own 404s stay the host's."""
    app.register_error_handler(404, lambda error: ("The host's own page", 404))
    for path in ("/portal/nonexistent", "/portal/billing/x/y.pdf", "/portal/%0A", "/portal/test/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "There is nothing here" in response.text
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    token = csrf_token(client.get(LOGIN).text)
    assert client.post("/portal/nonexistent", data={"csrf_token": token}).status_code == 404
    wrong_method = client.get("/portal/logout")
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    assert "Content-Security-Policy" in wrong_method.headers
    host = client.get("/elsewhere")
    assert (host.status_code, host.text) == (404, "The host's own page")
    assert "Content-Security-Policy" not in host.headers


def test_hsts_is_sent_when_set_and_by_default_in_production(
    app_factory: Callable[..., Flask], database_url: str, business: m.Business
) -> None:
    """C3: Strict-Transport-Security on the portal's pages and API as configured; none in
    testing by default (nor with 0), one year by default outside debug and testing."""
    pinned = app_factory(database_url, CUSTOMER_PORTAL_HSTS_MAX_AGE=600)
    for path in (LOGIN, "/portal/nonexistent", "/portal/api/v1/openapi.json"):
        assert pinned.test_client().get(path).headers["Strict-Transport-Security"] == (
            "max-age=600"
        ), path
    off = app_factory(database_url, CUSTOMER_PORTAL_HSTS_MAX_AGE=0)
    off.testing = False
    assert "Strict-Transport-Security" not in off.test_client().get(LOGIN).headers
    default = app_factory(database_url)
    assert "Strict-Transport-Security" not in default.test_client().get(LOGIN).headers
    default.testing = False
    response = default.test_client().get(LOGIN)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    with pytest.raises(portal.ConfigurationError, match="HSTS_MAX_AGE"):
        app_factory(database_url, CUSTOMER_PORTAL_HSTS_MAX_AGE=-1)


def test_the_session_cookie_is_secure_outside_debug(tmp_path: Path, database_url: str) -> None:
    """C2: in production the cookie only travels over https. The portal does not
    overrule the host's setting: it refuses to start without it, naming it."""
    app = Flask("prod", instance_path=str(tmp_path))
    app.config.update(
        SECRET_KEY="s" * 32,
        CUSTOMER_PORTAL_DATABASE_URI=database_url,
        CUSTOMER_PORTAL_EXTERNAL_URL="https://shop.example.com",
        CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379",
        MAIL_DEFAULT_SENDER="billing@shop.example.com",
        # No Redis here: this test counts nothing.
        RATELIMIT_ENABLED=False,
    )
    with pytest.raises(portal.ConfigurationError, match="SESSION_COOKIE_SECURE must be True"):
        portal.CustomerPortal(app)
    assert app.config["SESSION_COOKIE_SECURE"] is False, "the host's setting is left alone"
    app.config["SESSION_COOKIE_SECURE"] = True
    portal.CustomerPortal(app, provider=portal.TestProvider())
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    try:
        with app.app_context():
            business = portal.create_business("Acme Cloud", public_id="acme")
            customer = portal.upsert_customer(business, "ana@example.com", mode="live")
            link = portal.create_portal_session(customer)
        client = app.test_client()
        path = link.url.removeprefix("https://shop.example.com")
        page = client.get(path, base_url="https://shop.example.com")
        opened = client.post(
            path, data={"csrf_token": csrf_token(page.text)}, base_url="https://shop.example.com"
        )
        assert opened.status_code == 303
        cookie = opened.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        app.extensions["customer_portal"].engine.dispose()


def test_too_many_login_requests_get_a_clear_page(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """T9: per IP and per email (from all IPs) on the request, per IP on redemption."""
    app = app_factory(
        database_url,
        CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_IP="3 per minute",
        CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_EMAIL_ALL_IPS="2 per hour",
        CUSTOMER_PORTAL_REDEEM_RATE_LIMIT="4 per minute",
    )
    with app.app_context():
        portal.create_business("Acme Cloud", public_id="acme")
    client = app.test_client()
    token = csrf_token(client.get(LOGIN).text)

    def ask(email: str, ip: str) -> int:
        form = {"csrf_token": token, "email": email}
        return client.post(LOGIN, data=form, environ_base={"REMOTE_ADDR": ip}).status_code

    assert [ask("a@example.com", "10.0.0.1"), ask("b@example.com", "10.0.0.1")] == [200, 200]
    assert ask("c@example.com", "10.0.0.1") == 200
    limited = client.post(
        LOGIN,
        data={"csrf_token": token, "email": "d@example.com"},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert limited.status_code == 429
    assert "Too many requests, try again in 1 minute" in limited.text
    assert ask("a@example.com", "10.0.0.2") == 200
    assert ask("A@example.com ", "10.0.0.3") == 429
    assert (
        "try again in 60 minutes"
        in client.post(
            LOGIN,
            data={"csrf_token": token, "email": "a@example.com"},
            environ_base={"REMOTE_ADDR": "10.0.0.4"},
        ).text
    )
    codes = [client.get(LOGIN + "/guess").status_code for _ in range(5)]
    assert codes == [410, 410, 410, 410, 429]


def test_one_client_cannot_lock_an_email_out_of_sign_in(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """T9: the per-email limit counts one client IP's requests for an email of one business;
    whoever asks too often is refused (429 with Retry-After), not the email's owner on
    another IP, nor the same email at another business."""
    app = app_factory(database_url, CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_EMAIL="2 per hour")
    with app.app_context():
        portal.create_business("Acme Cloud", public_id="acme")
        portal.create_business("Globex", public_id="globex")
    client = app.test_client()
    token = csrf_token(client.get(LOGIN).text)

    def ask(ip: str, page: str = LOGIN) -> TestResponse:
        form = {"csrf_token": token, "email": "ana@example.com"}
        return client.post(page, data=form, environ_base={"REMOTE_ADDR": ip})

    assert [ask("203.0.113.66").status_code for _ in range(2)] == [200, 200]
    refused = ask("203.0.113.66")
    assert refused.status_code == 429 and "try again in 60 minutes" in refused.text
    assert 3540 < int(refused.headers["Retry-After"]) <= 3600
    assert "Content-Security-Policy" in refused.headers
    assert ask("198.51.100.7").status_code == 200, "the owner still signs in"
    assert ask("203.0.113.66", "/portal/test/login/globex").status_code == 200


def test_an_email_has_a_ceiling_across_client_ips(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """T9: many IPs together may ask for one email only up to a higher ceiling, per business;
    only the requests that were answered count against it."""
    app = app_factory(
        database_url,
        CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_EMAIL="2 per hour",
        CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_EMAIL_ALL_IPS="3 per hour",
    )
    with app.app_context():
        portal.create_business("Acme Cloud", public_id="acme")
        portal.create_business("Globex", public_id="globex")
    client = app.test_client()
    token = csrf_token(client.get(LOGIN).text)

    def ask(ip: str, page: str = LOGIN) -> int:
        form = {"csrf_token": token, "email": "ana@example.com"}
        return client.post(page, data=form, environ_base={"REMOTE_ADDR": ip}).status_code

    assert [ask("203.0.113.66") for _ in range(5)] == [200, 200, 429, 429, 429]
    # The refused requests did not count against the email: one more may ask.
    assert [ask("203.0.113.1"), ask("203.0.113.2")] == [200, 429]
    assert ask("203.0.113.2", "/portal/test/login/globex") == 200


def test_a_portal_customer_is_not_the_hosts_user_and_the_staff_page_stays_closed(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """Z3: the staff page runs behind the host's own decorator; a portal session
    never opens it, and a staff login is no portal customer."""
    from flask_login import LoginManager, UserMixin, current_user, login_required, login_user

    class Staff(UserMixin):
        id = "staff-1"

    app = app_factory(database_url, portal_options={"staff_decorator": login_required})
    LoginManager(app).user_loader(lambda user_id: Staff() if user_id == "staff-1" else None)
    app.add_url_rule(
        "/staff-login", "staff_login", lambda: login_user(Staff()) and "ok", methods=["POST"]
    )
    app.add_url_rule("/whoami", "whoami", lambda: str(current_user.get_id()))
    with app.app_context():
        acme = portal.create_business("Acme Cloud", public_id="acme")
        ana = portal.upsert_customer(acme, "ana@example.com")
        link = portal.create_portal_session(ana)
        invite = f"/portal/staff/test/acme/customers/{ana.public_id}/invite"
    customer = app.test_client()
    open_link(customer, link.url)
    assert customer.get("/portal/").status_code == 200
    assert customer.get(invite).status_code == 401
    assert customer.get("/whoami").text == "None"

    staff = app.test_client()
    staff.post("/staff-login")
    page = staff.get(invite)
    assert page.status_code == 200
    assert f"{EXTERNAL_URL}/portal/test/login/acme" in page.text
    generated = staff.post(invite, data={"csrf_token": csrf_token(page.text)})
    assert "/portal/test/login/acme/" in generated.text
    # Not signed in to the portal: the one business's sign-in page.
    assert staff.get("/portal/").headers["Location"] == "/portal/test/login/acme"
    assert staff.get("/portal/staff/test/acme/customers/cus_nobody/invite").status_code == 404


def test_the_host_login_bridge(app_factory: Callable[..., Flask], database_url: str) -> None:
    """A host whose users are the customers sends them in without a link."""
    from flask_login import LoginManager, UserMixin, login_user

    class User(UserMixin):
        def __init__(self, email: str) -> None:
            self.id = email

    def customer_of(user: User) -> m.Customer | None:
        return portal.find_customer(portal.get_business("acme"), user.id, mode="test")

    app = app_factory(database_url, portal_options={"host_customer": customer_of})
    LoginManager(app).user_loader(User)
    app.add_url_rule(
        "/login/<email>", "login", lambda email: login_user(User(email)) and "ok", methods=["POST"]
    )
    with app.app_context():
        portal.upsert_customer(portal.create_business("Acme", public_id="acme"), "ana@example.com")
    client = app.test_client()
    assert client.get("/portal/from-host").status_code == 401
    client.post("/login/ana@example.com")
    page = client.get("/portal/from-host")
    assert "Continue to your account" in page.text
    entered = client.post("/portal/from-host", data={"csrf_token": csrf_token(page.text)})
    assert entered.status_code == 303
    assert "ana@example.com" in client.get("/portal/").text
    stranger = app.test_client()
    stranger.post("/login/zoe@example.com")
    assert stranger.get("/portal/from-host").status_code == 404


def test_an_oversized_form_is_refused(client: FlaskClient, business: m.Business) -> None:
    """V1: the pages cap what a request may carry."""
    token = csrf_token(client.get(LOGIN).text)
    response = client.post(LOGIN, data={"csrf_token": token, "email": "a" * 70_000})
    assert response.status_code == 413


class ChunkedBody(io.RawIOBase):
    """A request body that arrives in chunks, without a Content-Length: it counts what is read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.pending:
            self.pending = next(self.chunks, b"")
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        self.read_bytes += size
        return size


def test_a_chunked_form_is_capped_by_what_is_read(
    client: FlaskClient, business: m.Business
) -> None:
    """V1: a form sent with ``Transfer-Encoding: chunked`` (no Content-Length to check) is cut
    off once 64 KiB are read: a 413 page, and the megabyte behind it is never read."""
    token = csrf_token(client.get(LOGIN).text)
    first = f"csrf_token={token}&email=".encode()
    body = ChunkedBody(itertools.chain([first], itertools.repeat(b"a" * 4096, 256)))
    response = client.post(
        LOGIN,
        headers={"Transfer-Encoding": "chunked"},
        content_type="application/x-www-form-urlencoded",
        # A WSGI server that decodes chunked bodies says so (gunicorn, Werkzeug's own).
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert "That was too much to send" in response.text
    assert "Content-Security-Policy" in response.headers
    assert body.read_bytes <= 64 * 1024 + 4096


def test_signing_in_sends_a_signal(app: Flask, client: FlaskClient, customer: m.Customer) -> None:
    """customer_signed_in: sent with the customer and how they came in."""
    from flask_customer_portal.signals import customer_signed_in

    received: list[dict] = []
    with customer_signed_in.connected_to(lambda sender, **kw: received.append(kw), app):
        sign_in_with_link(client, customer)
    assert [(r["customer"].email, r["method"]) for r in received] == [("ana@example.com", "link")]


def test_rotating_the_secret_key_keeps_customers_signed_in(
    app: Flask, client: FlaskClient, signed_in: m.Customer
) -> None:
    """O1: with the old key in SECRET_KEY_FALLBACKS a rotation signs nobody out;
    without it, the old cookies stop working."""
    signed_with_old_key = client.get_cookie("session")
    assert signed_with_old_key is not None
    old = app.config["SECRET_KEY"]
    app.config.update(SECRET_KEY="the-new-secret", SECRET_KEY_FALLBACKS=[old])
    assert client.get("/portal/").status_code == 200
    app.config["SECRET_KEY_FALLBACKS"] = []
    late = app.test_client()
    late.set_cookie("session", signed_with_old_key.value)
    assert late.get("/portal/").headers["Location"].startswith("/portal/test/login/acme")


@pytest.mark.parametrize(
    ("return_url", "code"),
    [
        ("javascript:alert(1)", "not_https"),
        ("https://evil.example.com/", "origin_not_allowed"),
        ("https://shop.example.com/\\evil", "invalid_url"),
    ],
)
def test_a_host_session_returns_only_to_an_allowed_origin(
    customer: m.Customer, session: Session, return_url: str, code: str
) -> None:
    """V1: start_session checks its return_url as create_portal_session does; a refused one
    opens no session."""
    with pytest.raises(portal.ValidationError) as error:
        portal.start_session(customer, return_url=return_url)
    assert (error.value.field, error.value.code) == ("return_url", code)
    assert session.scalar(sa.select(sa.func.count()).select_from(m.PortalSession)) == 0
    allowed = portal.start_session(customer, return_url=EXTERNAL_URL + "/account")
    assert allowed.session.return_url == EXTERNAL_URL + "/account"
