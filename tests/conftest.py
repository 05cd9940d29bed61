"""Fixtures: a portal app on SQLite and on PostgreSQL, a client, a CLI runner, billing data.

Every test that asks for ``app`` (or ``database_url``) runs twice, once on an
embedded SQLite file and once on a throw-away PostgreSQL cluster started for
the session. Both databases are built by the shipped migrations, never by
``create_all``, so the tests see the schema a merchant gets. Plain helpers that
several test modules share, and no fixture needs, are in :mod:`tests.helpers`.
"""

from __future__ import annotations

import contextvars
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

import flask_customer_portal as portal
from flask_customer_portal import CustomerPortal, migrate
from flask_customer_portal.db import Base
from flask_customer_portal.providers import TestProvider

from .postgres import Cluster, find_bindir
from .redis import RedisServer, find_redis_server
from .stripe_server import StripeServer, find_localstripe

BACKENDS = ("sqlite", "postgresql")
EXTERNAL_URL = "http://portal.example.com"
#: A form's CSRF field, as the portal writes it or as Flask-WTF does (the example store).
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]* value="([^"]+)"')
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_pg = metafunc.definition.get_closest_marker("postgresql_only")
        metafunc.parametrize("backend", ("postgresql",) if only_pg else BACKENDS)


class IsolatedClient(FlaskClient):
    """A test client whose requests run in a context of their own, as on a server.

    pytest-flask keeps an app context pushed during each test, and Flask reuses
    a pushed app context for requests: ``g``, the CSRF token and the database
    session would leak from one request to the next. Here they cannot.
    """

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        context = contextvars.Context()
        response: TestResponse = context.run(super().open, *args, **kwargs)
        # Tear the request's contexts down now, in the context they live in.
        context.run(self._context_stack.close)
        return response


def host_app(database_url: str, instance_path: Path, **config: Any) -> Flask:
    """Return a bare Flask app configured for the portal on ``database_url``, without it yet."""
    app = Flask("portal_tests", instance_path=str(instance_path))
    app.config.update(
        TESTING=True,
        SECRET_KEY="test-secret",
        CUSTOMER_PORTAL_DATABASE_URI=database_url,
        CUSTOMER_PORTAL_EXTERNAL_URL=EXTERNAL_URL,
        CUSTOMER_PORTAL_MAIL_DISPATCH="manual",
        MAIL_DEFAULT_SENDER="billing@acme.example.com",
    )
    app.config.update(config)
    app.test_client_class = IsolatedClient
    return app


def make_app(
    database_url: str,
    instance_path: Path,
    portal_options: dict[str, Any] | None = None,
    **config: Any,
) -> Flask:
    """Return a bare Flask app with the portal on ``database_url``.

    ``portal_options`` are keyword arguments of :class:`CustomerPortal`.
    """
    app = host_app(database_url, instance_path, **config)
    CustomerPortal(app, **(portal_options or {}))
    return app


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (install the postgresql package)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    cluster = Cluster(bindir)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throw-away Redis server for the session (rate limits shared by processes)."""
    executable = find_redis_server()
    if executable is None:
        message = "redis-server not found (install the redis-server package)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(executable)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeServer]:
    """A throw-away localstripe server for the session (the Stripe provider's tests)."""
    executable = find_localstripe()
    if executable is None:
        message = "localstripe not found (make .venv/.installed-dev installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = StripeServer(executable)
    server.start()
    yield server
    server.stop()


def _migrate(database_url: str, instance_path: Path) -> None:
    app = make_app(database_url, instance_path)
    with app.app_context():
        migrate.upgrade()
    app.extensions["customer_portal"].engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sqlite-template")
    _migrate(f"sqlite:///{folder / 'portal.sqlite3'}", folder)
    return folder / "portal.sqlite3"


@pytest.fixture(scope="session")
def pg_database(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = pg_cluster.create_database("portal")
    _migrate(url, tmp_path_factory.mktemp("pg-template"))
    return url


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The URL of a migrated, empty portal database on ``backend``."""
    if backend == "sqlite":
        target = tmp_path / "portal.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_database")
    engine = sa.create_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The URL of a database with no tables at all on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"empty_{os.urandom(6).hex()}")


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Make portal apps (``make_app`` arguments) whose connections close after the test."""
    apps: list[Flask] = []

    def factory(database_url: str, **config: Any) -> Flask:
        apps.append(make_app(database_url, tmp_path / f"instance-{len(apps)}", **config))
        return apps[-1]

    yield factory
    for made in apps:
        state = made.extensions["customer_portal"]
        if state.dispatcher is not None:
            state.dispatcher.stop()
        state.engine.dispose()


@pytest.fixture
def app(database_url: str, app_factory: Callable[..., Flask]) -> Flask:
    return app_factory(database_url)


@pytest.fixture
def local_mail_app(database_url: str, app_factory: Callable[..., Flask]) -> Flask:
    """A portal app whose mail stays in memory; a module uses it with ``app = local_mail_app``."""
    return app_factory(database_url, CUSTOMER_PORTAL_MAIL_BACKEND="local")


@pytest.fixture
def session(app: Flask) -> Session:
    """The portal's session in the test's app context."""
    return app.extensions["customer_portal"].session  # type: ignore[no-any-return]


@pytest.fixture
def business(app: Flask) -> portal.models.Business:
    return portal.create_business(
        "Acme Cloud", public_id="acme", support_email="help@acme.example.com"
    )


@pytest.fixture
def customer(business: portal.models.Business) -> portal.models.Customer:
    return portal.upsert_customer(business, "ana@example.com", name="Ana Souza")


@pytest.fixture
def subscription(customer: portal.models.Customer) -> portal.models.Subscription:
    return portal.start_subscription(
        customer, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
    )


def csrf_token(page: str) -> str:
    """Return the CSRF token of the first form on an HTML page."""
    match = CSRF_INPUT.search(page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def single_use_id(token: str) -> str:
    """Return the random single-use id a link's signed token carries (read, not verified)."""
    payload = token.rsplit(".", 2)[0]
    value = URLSafeTimedSerializer("any key").load_payload(payload.encode())
    assert isinstance(value, str) and len(value) >= 43, value
    return value


def open_link(
    client: FlaskClient, url: str, *, site: str = EXTERNAL_URL, page_status: int = 200
) -> TestResponse:
    """Open a sign-in link like a person: GET the page, press "Continue" (a POST)."""
    path = url.removeprefix(site)
    page = client.get(path)
    assert page.status_code == page_status, page.text
    return client.post(path, data={"csrf_token": csrf_token(page.text)})


def sign_in_with_link(client: FlaskClient, customer: portal.models.Customer) -> TestResponse:
    """Open a new dynamic sign-in link of ``customer`` in ``client``; return the answer."""
    return open_link(client, portal.create_portal_session(customer).url)


@pytest.fixture
def signed_in(client: FlaskClient, customer: portal.models.Customer) -> portal.models.Customer:
    """Sign ``customer`` in through a dynamic link; return the customer."""
    assert sign_in_with_link(client, customer).status_code == 303
    return customer


def provider_of(app: Flask) -> TestProvider:
    """Return ``app``'s test provider, the payment provider of test mode."""
    found = app.extensions["customer_portal"].test_provider
    assert isinstance(found, TestProvider)
    return found


@pytest.fixture
def provider(app: Flask) -> TestProvider:
    """The app's test provider: it knows every charge really made."""
    return provider_of(app)
