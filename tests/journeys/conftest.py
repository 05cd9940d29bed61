"""End-to-end journeys: the example store on a local port, a real SMTP server, headless Chromium.

The browser is the system's Chromium (Debian's ``chromium`` package) driven by
Playwright, or Playwright's own Chromium where one is installed. Each journey
saves a screenshot under ``test-output/journeys/``; a failing one keeps a
Playwright trace beside it (open it with ``playwright show-trace``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from example_app import create_app
from example_app.models import db
from flask_customer_portal import get_business, upsert_customer

from ..conftest import IN_CI
from ..helpers import close_app, serving
from ..smtp import HOST, SMTPServer, free_port

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "journeys"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _system_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("Playwright is not installed")
        pytest.skip("Playwright is not installed")
    playwright = sync_playwright().start()
    executable = os.environ.get("CHROMIUM") or _system_chromium()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
    except Exception as error:  # no system browser, and none of Playwright's own
        playwright.stop()
        message = f"no Chromium to drive ({error.__class__.__name__}); install chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example store's database, seeded once for every journey."""
    database = tmp_path_factory.mktemp("store") / "acme.sqlite3"
    app = create_app(_config(database, port=0, smtp_port=0))
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        db.engine.dispose()
    return database


def _config(database: Path, *, port: int, smtp_port: int) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "journeys",
        "STAFF_PASSWORD": "journeys-staff",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
        "CUSTOMER_PORTAL_EXTERNAL_URL": f"http://{HOST}:{port}",
        "MAIL_SERVER": HOST,
        "MAIL_PORT": smtp_port,
        "MAIL_SUPPRESS_SEND": False,
        "CUSTOMER_PORTAL_MAIL_BACKEND": "smtp",
        "CUSTOMER_PORTAL_MAIL_DISPATCH": "thread",
    }


class Store:
    """The example store running on a local port, and the mail it sent."""

    def __init__(self, app: Flask, url: str, smtp: SMTPServer) -> None:
        self.app, self.url, self.smtp = app, url, smtp


@pytest.fixture
def store(seeded_store: Path, tmp_path: Path) -> Iterator[Store]:
    database = tmp_path / "acme.sqlite3"
    shutil.copy(seeded_store, database)
    smtp = SMTPServer()
    smtp.start()
    port = free_port()
    app = create_app(_config(database, port=port, smtp_port=smtp.port))
    try:
        with serving(app, port) as url:
            yield Store(app, url, smtp)
    finally:
        close_app(app)
        smtp.stop()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page; a screenshot always, a trace when the journey fails."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.tracing.start(screenshots=True, snapshots=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    name = request.node.name.replace("/", "_")
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)
    trace = OUTPUT / f"{name}.trace.zip"
    if request.node.stash.get(FAILED, False):
        context.tracing.stop(path=str(trace))
    else:
        context.tracing.stop()
        trace.unlink(missing_ok=True)
    context.close()


def choose_language(store: Store, email: str, language: str) -> None:
    """Save ``language`` as the customer's choice, as the language switcher does, so the
    pages read the same whatever the seed chose."""
    with store.app.app_context():
        business = get_business("acme")
        assert business is not None
        upsert_customer(business, email, locale=language)


def sign_in(store: Store, page: Any, email: str, *, language: str = "en") -> None:
    """Sign ``email`` in with a dynamic link from ``flask portal invite``, as journey 2 does,
    reading the portal in ``language``. The sign-in is recent, as changing the email or the
    card needs."""
    choose_language(store, email, language)
    result = store.app.test_cli_runner().invoke(
        args=["portal", "invite", email, "--business", "acme", "--json"]
    )
    assert result.exit_code == 0, result.output
    page.goto(json.loads(result.output)["dynamic_link"])
    page.get_by_role("button", name="Continue to your account").click()
    page.wait_for_url(f"{store.url}/portal/")
