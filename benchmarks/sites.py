"""The measured pages of each server, signed in as a customer would be.

For the store: a real sign-in (``flask portal invite ... --json``, then GET and
POST the link with its CSRF token), the session cookie then passed to the load
generator; page 400 of the billing history found by following its "Older"
links. For the baseline: the same pages' counterparts. Also the SQL statements
each page runs, counted in-process on the app's engine.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import sqlalchemy as sa
from flask import Flask

from .load import Request
from .seed import BUSINESS_ID, MEASURED_EMAIL, MODE

CSRF = re.compile(r'name="csrf_token"[^>]*\bvalue="([^"]+)"')
ANCHOR = re.compile(r"<a\b[^>]*>")
HREF = re.compile(r'\bhref="([^"]+)"')
PORTAL_INVOICE = re.compile(r'href="/portal/billing/invoices/(in_[0-9a-z]+)"')
LOGIN_PATH = (
    f"/portal/{MODE}/login/{BUSINESS_ID}" if MODE == "test" else f"/portal/login/{BUSINESS_ID}"
)


@dataclass(frozen=True)
class Page:
    key: str
    label: str


PAGES = (
    Page("overview", "Overview"),
    Page("billing", "Billing history, page 1"),
    Page("billing_deep", "Billing history, page {deep}"),
    Page("subscriptions", "Subscriptions"),
    Page("invoice", "Invoice page"),
    Page("pdf", "Invoice PDF, repeated download"),
    Page("link", "Sign-in link page (GET)"),
    Page("sign_in", "Sign-in request (POST)"),
)


@dataclass
class Site:
    """A server's measured requests, by page key (pages it lacks are absent)."""

    name: str
    origin: str
    requests: dict[str, Request] = field(default_factory=dict)
    #: The measured customer's invoices, newest first, as the history lists them.
    invoice_ids: list[str] = field(default_factory=list)
    cookie: str = ""

    def path(self, key: str) -> str:
        return self.requests[key].url.removeprefix(self.origin)


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies)


def csrf_token(page: str) -> str:
    match = CSRF.search(page)
    if match is None:
        raise RuntimeError("no CSRF token on the page")
    return html.unescape(match[1])


def older_link(page: str) -> str | None:
    """The href of the page's "next" (older) link, or of a link with an ``after`` cursor."""
    anchors = ANCHOR.findall(page)
    for rule in ('rel="next"', "after="):
        for anchor in anchors:
            href = HREF.search(anchor)
            if rule in anchor and href and "after=" in href[1]:
                return html.unescape(href[1])
    return None


def _get(session: requests.Session, url: str, **kwargs: Any) -> requests.Response:
    response = session.get(url, allow_redirects=False, timeout=60, **kwargs)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
    return response


def walk(
    session: requests.Session,
    origin: str,
    path: str,
    pages: int,
    seen: Callable[[str], None] | None = None,
) -> str:
    """Follow the "Older" links from ``path`` to page ``pages``; return that page's path."""
    for number in range(1, pages):
        page = _get(session, origin + path).text
        if seen is not None:
            seen(page)
        older = older_link(page)
        if older is None:
            raise RuntimeError(f"page {number} of {path} has no older link")
        path = older
    if seen is not None:
        seen(_get(session, origin + path).text)
    return path


# -- The store ----------------------------------------------------------------------------


def invite(app: Flask) -> str:
    """A new dynamic link of the measured customer: ``flask portal invite ... --json``."""
    result = app.test_cli_runner().invoke(
        args=["portal", "invite", MEASURED_EMAIL, "--business", BUSINESS_ID, "--json"]
    )
    if result.exit_code != 0:
        raise RuntimeError(f"flask portal invite failed: {result.output}")
    return str(json.loads(result.output)["dynamic_link"])


def sign_in_form(origin: str, path: str) -> tuple[str, str]:
    """GET a page with a form; return its cookie and CSRF token."""
    with requests.Session() as browser:
        token = csrf_token(_get(browser, origin + path).text)
        return cookie_header(browser), token


def store_site(
    name: str, origin: str, app: Flask, *, deep_page: int | None, collect_invoices: bool
) -> Site:
    """Sign in to the store through a real link; find each page's URL."""
    with requests.Session() as browser:
        return _store_site(Site(name, origin), browser, app, deep_page, collect_invoices)


def _store_site(
    site: Site, browser: requests.Session, app: Flask, deep_page: int | None, collect: bool
) -> Site:
    origin = site.origin
    link = invite(app).removeprefix(origin)
    token = csrf_token(_get(browser, origin + link).text)
    opened = browser.post(
        origin + link, data={"csrf_token": token}, allow_redirects=False, timeout=60
    )
    if opened.status_code != 303:
        raise RuntimeError(f"signing in: {opened.status_code} {opened.text[:300]}")
    site.cookie = cookie_header(browser)
    signed = {"Cookie": site.cookie}

    listed: list[str] = []

    def seen(page: str) -> None:
        listed.extend(PORTAL_INVOICE.findall(page))

    seen(_get(browser, origin + "/portal/billing").text)
    if deep_page is not None:
        deep = walk(browser, origin, "/portal/billing", deep_page, seen if collect else None)
        site.requests["billing_deep"] = Request(origin + deep, headers=signed)
    site.invoice_ids = list(dict.fromkeys(listed))
    if not site.invoice_ids:
        raise RuntimeError("the billing history lists no invoice")
    newest = site.invoice_ids[0]
    for key, path in (
        ("overview", "/portal/"),
        ("billing", "/portal/billing"),
        ("subscriptions", "/portal/subscriptions"),
        ("invoice", f"/portal/billing/invoices/{newest}"),
        ("pdf", f"/portal/billing/invoices/{newest}.pdf"),
    ):
        site.requests[key] = Request(origin + path, headers=signed)
    # A link's "Continue" page: a first visit (no cookie); the GET does not use the link.
    site.requests["link"] = Request(invite(app))
    cookie, token = sign_in_form(origin, LOGIN_PATH)
    site.requests["sign_in"] = Request(
        origin + LOGIN_PATH,
        method="POST",
        headers={"Cookie": cookie},
        body=urlencode({"csrf_token": token, "email": MEASURED_EMAIL}),
    )
    return site


# -- The baseline -------------------------------------------------------------------------


def baseline_link(database_url: str) -> str:
    """Add a sign-in link row of the measured customer for the baseline's link page."""
    from flask_customer_portal.models import Business, Customer, LoginLink

    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            customer = connection.execute(
                sa.select(Customer.id, Customer.business_id)
                .join(Business, Business.id == Customer.business_id)
                .where(Business.public_id == BUSINESS_ID, Customer.email == MEASURED_EMAIL)
            ).one()
            connection.execute(
                sa.insert(LoginLink).values(
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    purpose="portal_session",
                    business_id=customer.business_id,
                    mode=MODE,
                    customer_id=customer.id,
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                )
            )
    finally:
        engine.dispose()
    return token


def baseline_site(
    origin: str, database_url: str, *, deep_page: int | None, invoice_id: str
) -> Site:
    site = Site("baseline", origin)
    with requests.Session() as browser:
        _get(browser, f"{origin}/sign-in", params={"email": MEASURED_EMAIL})
        site.cookie = cookie_header(browser)
        if deep_page is not None:
            deep = walk(browser, origin, "/billing", deep_page)
            site.requests["billing_deep"] = Request(origin + deep, headers={"Cookie": site.cookie})
    signed = {"Cookie": site.cookie}
    for key, path in (
        ("overview", "/overview"),
        ("billing", "/billing"),
        ("subscriptions", "/subscriptions"),
        ("invoice", f"/invoices/{invoice_id}"),
        ("pdf", f"/invoices/{invoice_id}.pdf"),
    ):
        site.requests[key] = Request(origin + path, headers=signed)
    site.requests["link"] = Request(f"{origin}/link/{baseline_link(database_url)}")
    cookie, token = sign_in_form(origin, "/request-link")
    site.requests["sign_in"] = Request(
        origin + "/request-link",
        method="POST",
        headers={"Cookie": cookie},
        body=urlencode({"csrf_token": token, "email": MEASURED_EMAIL}),
    )
    return site


def check(site: Site) -> dict[str, int]:
    """Send each request once with a plain client; every page must answer 200."""
    statuses = {}
    for key, request in site.requests.items():
        answer = requests.request(
            request.method,
            request.url,
            headers={
                **request.headers,
                **({"Content-Type": "application/x-www-form-urlencoded"} if request.body else {}),
            },
            data=request.body,
            allow_redirects=False,
            timeout=60,
        )
        statuses[key] = answer.status_code
        if answer.status_code != 200:
            raise RuntimeError(
                f"{site.name} {key}: {request.method} {request.url} answered "
                f"{answer.status_code}: {answer.text[:300]}"
            )
        if key == "pdf" and not answer.content.startswith(b"%PDF"):
            raise RuntimeError(f"{site.name} pdf: not a PDF")
    return statuses


# -- Statements ---------------------------------------------------------------------------


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    """The statements sent to the database while the block runs."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def count_statements(
    app: Flask, engine: sa.Engine, site: Site, sign_in: Callable[[Any], None], link_path: str,
    form_path: str, extra: dict[str, str] | None = None,
) -> dict[str, int]:  # fmt: skip
    """Each page's statements, in-process (a test client of the same app on the same database).

    Each page is requested once first, then counted: what a warm worker runs.
    ``extra`` maps more keys to paths to count on their first request only.
    """
    client = app.test_client()
    sign_in(client)
    counts: dict[str, int] = {}
    for key in ("overview", "billing", "billing_deep", "subscriptions", "invoice", "pdf"):
        if key not in site.requests:
            continue
        path = site.path(key)
        client.get(path)
        with counting(engine) as statements:
            answer = client.get(path)
        _expect(answer.status_code, key)
        counts[key] = len(statements)
    visitor = app.test_client()
    visitor.get(link_path)
    with counting(engine) as statements:
        _expect(visitor.get(link_path).status_code, "link")
    counts["link"] = len(statements)
    visitor = app.test_client()
    token = csrf_token(visitor.get(form_path).text)
    with counting(engine) as statements:
        answer = visitor.post(form_path, data={"csrf_token": token, "email": MEASURED_EMAIL})
    _expect(answer.status_code, "sign_in")
    counts["sign_in"] = len(statements)
    for key, path in (extra or {}).items():
        with counting(engine) as statements:
            _expect(client.get(path).status_code, key)
        counts[key] = len(statements)
    return counts


def _expect(status: int, key: str) -> None:
    if status != 200:
        raise RuntimeError(f"in-process {key}: {status}")


def sign_in_store(app: Flask) -> Callable[[Any], None]:
    def sign_in(client: Any) -> None:
        path = invite(app).removeprefix(app.config["CUSTOMER_PORTAL_EXTERNAL_URL"])
        token = csrf_token(client.get(path).text)
        answer = client.post(path, data={"csrf_token": token})
        if answer.status_code != 303:
            raise RuntimeError(f"in-process sign-in: {answer.status_code}")

    return sign_in


def sign_in_baseline(client: Any) -> None:
    _expect(client.get("/sign-in", query_string={"email": MEASURED_EMAIL}).status_code, "sign-in")
