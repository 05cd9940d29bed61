"""The pytest plugin a merchant gets by installing the package, run on a merchant's own suite.

Each test writes a small shop (a host app with its own ``app`` fixture, a
template of its own and a signal receiver) and runs its test suite with
pytester, in-process: the ``portal_*`` fixtures come from the installed
plugin's entry point, not from any conftest. The shop's database is a
migrated portal database of the outer test (SQLite or PostgreSQL), with the
portal embedded or in the shop's own Flask-SQLAlchemy ``db``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

SHOP_CONFTEST = """
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import flask_customer_portal as portal
from flask_customer_portal import migrate, signals


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Order(db.Model):
    __tablename__ = "shop_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(20))


def remember_cancellation(sender, subscription, **kwargs):
    sender.extensions["shop"]["cancelled"].append(subscription.public_id)


def create_app(instance_path):
    app = Flask("shop", root_path=str(Path(__file__).parent), instance_path=str(instance_path))
    app.config.update(
        TESTING=True,
        SECRET_KEY="shop-secret",
        CUSTOMER_PORTAL_EXTERNAL_URL="http://shop.example.com",
        MAIL_DEFAULT_SENDER="billing@shop.example.com",
    )
    url = os.environ["SHOP_DATABASE_URL"]
    if os.environ["SHOP_PORTAL_DB"] == "shared":
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        db.init_app(app)
        portal.CustomerPortal(app, db=db)
    else:
        app.config["CUSTOMER_PORTAL_DATABASE_URI"] = url
        portal.CustomerPortal(app)
    app.extensions["shop"] = {"cancelled": []}
    signals.subscription_cancelled.connect(remember_cancellation, app)
    return app


@pytest.fixture
def app(tmp_path):
    app = create_app(tmp_path)
    with app.app_context():
        migrate.upgrade()
        if "sqlalchemy" in app.extensions:
            db.create_all()
        yield app
        if "sqlalchemy" in app.extensions:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
    if "sqlalchemy" not in app.extensions:
        app.extensions["customer_portal"].engine.dispose()


@pytest.fixture
def ana(app):
    acme = portal.upsert_business("acme", "Acme Cloud")
    return portal.upsert_customer(acme, "ana@example.com", name="Ana Souza")


@pytest.fixture
def plan(ana):
    return portal.start_subscription(
        ana, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
    )
"""

SHOP_OVERVIEW = """{% extends "customer_portal/base.html" %}
{% block content %}<p>Welcome back to the shop, {{ customer.name }}.</p>{% endblock %}
"""

#: An email template of the shop's with a mistake in it.
SHOP_BROKEN_EMAIL = "{{ customer.no_such_thing() }}"

SHOP_TESTS = """
import pytest

import flask_customer_portal as portal

RETURN_URL = "http://shop.example.com/billing"


def test_a_signed_in_customer_sees_the_shops_overview(portal_client, ana):
    page = portal_client(ana).get("/portal/")
    assert page.status_code == 200
    assert "Welcome back to the shop, Ana Souza." in page.text
    assert "Welcome back" not in portal_client().get("/portal/", follow_redirects=True).text


def test_cancelling_posts_the_form_and_mails_the_customer(
    app, portal_client, portal_outbox, ana, plan
):
    client = portal_client(ana)
    cancel = f"/portal/subscriptions/{plan.public_id}/cancel"
    refused = client.post(cancel, data={"when": "now", "csrf_token": "forged"})
    assert refused.status_code == 400
    assert client.post(cancel, data={"when": "period_end"}).status_code == 303

    assert app.extensions["shop"]["cancelled"] == [plan.public_id]
    (mail,) = portal_outbox
    assert mail.recipient == "ana@example.com"
    assert mail.subject.startswith("Your Acme Cloud Pro subscription ends on")
    assert "Pro" in mail.text and mail.link is None


def test_a_mailed_sign_in_link_opens_the_portal(portal_client, portal_outbox, ana):
    portal.create_portal_session(ana, send_email=True)
    (mail,) = portal_outbox.to("ana@example.com")
    assert mail.subject == "Your Acme Cloud account"
    assert mail.link.startswith("http://shop.example.com/portal/")
    client = portal_client()
    assert client.open_link(mail.link).status_code == 303
    assert "Ana Souza" in client.get("/portal/").text
    assert client.open_link(mail.link).status_code != 303


def test_a_declined_card_keeps_the_plan_on_hold_and_a_good_one_reactivates_it(
    portal_provider, portal_outbox, ana, plan
):
    portal.record_failed_renewal(plan, reason="Your card was declined.")
    declined = portal_provider.add_card(ana, portal_provider.DECLINED)
    outcome = portal.reactivate_subscription(
        plan, declined, idempotency_key="shop-1", return_url=RETURN_URL
    )
    assert (outcome.status, outcome.failure_reason) == ("failed", "Your card was declined.")
    assert plan.status == "on_hold"

    good = portal_provider.add_card(ana)
    outcome = portal.reactivate_subscription(
        plan, good, idempotency_key="shop-2", return_url=RETURN_URL
    )
    assert outcome.status == "succeeded" and plan.status == "active"
    assert [charge.status for charge in portal_provider.charges] == ["failed", "succeeded"]
    assert [mail.subject for mail in portal_outbox] == [
        "Payment received: $29.00",
        "Your Acme Cloud Pro subscription is active again",
    ]


def test_a_broken_email_template_of_the_shop_fails_the_test(portal_outbox, plan):
    portal.cancel_subscription(plan, at_period_end=True)
    assert len(portal_outbox) == 1
    portal.undo_cancellation(plan)
    with pytest.raises(AssertionError, match="no_such_thing"):
        portal_outbox.messages
"""

#: (the outer backend, where the portal's tables live, pytest-flask on): four shops.
SHOPS = {
    "sqlite": [("embedded", True), ("shared", False)],
    "postgresql": [("shared", True), ("embedded", False)],
}


@pytest.mark.parametrize("variant", [0, 1])
def test_a_merchants_suite_uses_the_fixtures(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    database_url: str,
    variant: int,
) -> None:
    """C1, M1: signed in through a real link, forms posted with the session's CSRF token (a
    forged one is still refused), mail as the customer gets it (a template that fails to
    render fails the test), the test cards' outcomes."""
    portal_db, pytest_flask = SHOPS[backend][variant]
    monkeypatch.setenv("SHOP_DATABASE_URL", database_url)
    monkeypatch.setenv("SHOP_PORTAL_DB", portal_db)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makeconftest(SHOP_CONFTEST)
    pytester.makepyfile(test_shop=SHOP_TESTS)
    templates = pytester.mkdir("templates") / "customer_portal"
    templates.mkdir()
    (templates / "overview.html").write_text(SHOP_OVERVIEW)
    (templates / "email").mkdir()
    (templates / "email" / "cancellation_undone.txt").write_text(SHOP_BROKEN_EMAIL)

    options = [] if pytest_flask else ["-p", "no:flask"]
    result = pytester.runpytest("-p", "no:cacheprovider", *options)

    result.assert_outcomes(passed=5)


def test_the_plugin_adds_portal_fixtures_only(pytester: pytest.Pytester) -> None:
    """Active in every suite of an environment with the package: it hides none of a suite's
    fixtures (ours has ``app``, ``client``, ``customer``, ``provider``...)."""
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "flask_customer_portal.pytest_plugin" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("-" * 5))
    names = {line.split()[0] for line in lines[start + 1 : end] if line and line[0] != " "}
    assert names == {"portal_client", "portal_outbox", "portal_provider"}


def test_loading_the_plugin_imports_no_helper() -> None:
    """Loading it costs a suite nothing more than importing the package: its helpers (and
    Flask's test client) are imported when a test first asks for a fixture."""
    code = (
        "import sys, flask_customer_portal.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.endswith('.testing')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert "flask_customer_portal.testing" not in found.stdout
