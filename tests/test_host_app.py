"""A host app with its own Flask-SQLAlchemy ``db`` and model mounts the portal."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal import outbox


def create_host_app(database_url: str, instance_path: Path) -> tuple[Flask, SQLAlchemy]:
    """The twenty-line integration of the docs' quickstart."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Order(db.Model):  # type: ignore[name-defined]
        id: Mapped[int] = mapped_column(primary_key=True)
        reference: Mapped[str] = mapped_column(sa.String(20))

    app = Flask("host", instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["CUSTOMER_PORTAL_EXTERNAL_URL"] = "http://127.0.0.1:5000"
    app.testing = True
    db.init_app(app)
    portal.CustomerPortal(app, db=db)
    app.extensions["host_models"] = {"Order": Order}
    return app, db


def test_the_portal_lives_beside_the_hosts_tables(empty_database_url: str, tmp_path: Path) -> None:
    app, db = create_host_app(empty_database_url, tmp_path)
    Order = app.extensions["host_models"]["Order"]
    with app.app_context():
        db.create_all()
        assert sa.inspect(db.engine).get_table_names() == ["order"]

    result = app.test_cli_runner().invoke(args=["portal", "db", "upgrade"])
    assert result.exit_code == 0, result.output

    with app.app_context():
        db.session.add(Order(reference="A-1"))
        db.session.commit()
        acme = portal.create_business("Acme Cloud", public_id="acme")
        ana = portal.upsert_customer(acme, "ana@example.com", name="Ana")
        plan = portal.start_subscription(ana, product="Cloud", price=2900, currency="USD")
        invoice = portal.issue_invoice(
            ana, [{"description": "Setup", "unit_amount": 5000}], currency="USD"
        )
        portal.record_failed_renewal(plan, reason="Your card was declined.")
        invoice_id = invoice.id

    with app.app_context():
        assert db.session.scalar(sa.select(Order.reference)) == "A-1"
        assert db.session.get(m.Invoice, invoice_id).number == "ACMECL-TEST-000001"
        stored = db.session.scalars(sa.select(m.Subscription)).one()
        assert stored.status == "on_hold"
        assert portal.outstanding_dues(stored)[0] == 2900
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"order", "portal_customers", "portal_invoices"} <= tables
        assert portal.__version__
        engine = db.engine
    engine.dispose()
    if empty_database_url.startswith("sqlite"):
        assert os.path.exists(empty_database_url.removeprefix("sqlite:///"))


def test_the_portal_keeps_its_hands_off_the_host(empty_database_url: str, tmp_path: Path) -> None:
    """No hook of the portal's runs on the host's own requests, no listener of its on every
    SQLAlchemy session of the process, and the host's cookie settings stay the host's."""
    app, db = create_host_app(empty_database_url, tmp_path)
    app_wide = [
        function
        for registry in (
            app.before_request_funcs,
            app.after_request_funcs,
            app.teardown_request_funcs,
            app.teardown_appcontext_funcs,
            app.url_value_preprocessors,
            app.url_default_functions,
            app.template_context_processors,
        )
        for function in (registry.get(None, []) if isinstance(registry, dict) else registry)
        if function.__module__.startswith("flask_customer_portal")
    ]
    assert app_wide == []
    for event, listener in (
        ("after_commit", outbox.wake_after_commit),
        ("after_rollback", outbox.forget_after_rollback),
    ):
        assert not sa.event.contains(Session, event, listener)
        assert not sa.event.contains(sessionmaker(), event, listener)
        # The session the portal writes through (the host's here) is the one it listens to.
        assert sa.event.contains(db.session, event, listener)
    assert app.config["SESSION_COOKIE_SECURE"] is False
