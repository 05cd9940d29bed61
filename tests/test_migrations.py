"""The shipped migrations build exactly the models' schema, beside the host's own tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import Result
from flask import Flask

import flask_customer_portal as portal
from flask_customer_portal import history, migrate
from flask_customer_portal.db import Base
from flask_customer_portal.proxies import portal as portal_state


def _portal_tables(engine: sa.Engine) -> set[str]:
    return {name for name in sa.inspect(engine).get_table_names() if name.startswith("portal_")}


def test_upgrade_of_an_empty_database_matches_the_models(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    app = app_factory(empty_database_url)
    runner = app.test_cli_runner()
    result: Result = runner.invoke(args=["portal", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"Portal schema at {migrate.head_revision()}" in result.output

    engine = app.extensions["customer_portal"].engine
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"include_object": migrate.include_object, "compare_type": True},
        )
        assert compare_metadata(context, Base.metadata) == []
    assert _portal_tables(engine) == set(Base.metadata.tables) | {"portal_alembic_version"}


def test_the_portal_keeps_its_own_version_table_and_leaves_the_hosts_alone(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """A host using Flask-Migrate has ``alembic_version``; ours must not touch it."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(sa.text("INSERT INTO alembic_version VALUES ('host_rev_42')"))
        connection.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
    with app.app_context():
        migrate.upgrade()
        assert migrate.current_revision() == migrate.head_revision()
        migrate.downgrade("base")
        assert _portal_tables(engine) == {"portal_alembic_version"}
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT version_num FROM alembic_version")) == (
            "host_rev_42"
        )
    assert "orders" in sa.inspect(engine).get_table_names()


def test_db_current_says_when_the_schema_is_behind(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    app = app_factory(empty_database_url)
    runner = app.test_cli_runner()
    assert (
        "behind: run 'flask portal db upgrade'"
        in runner.invoke(args=["portal", "db", "current"]).output
    )
    runner.invoke(args=["portal", "db", "upgrade"])
    assert "up to date" in runner.invoke(args=["portal", "db", "current"]).output


def test_upgrading_twice_changes_nothing(app: Flask) -> None:
    with app.app_context():
        migrate.upgrade()
        assert migrate.current_revision() == migrate.head_revision()


def test_0003_upgrades_a_database_in_use_and_downgrades_back(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """The test provider's tables arrive beside a portal already holding data, and leave it
    as it was on the way down."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    with app.app_context():
        migrate.upgrade("0002")
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO portal_businesses (public_id, name, default_locale, "
                    "invoice_prefix, invoice_counter_live, invoice_counter_test, "
                    "cancel_at_period_end, cancel_now, created_at) "
                    "VALUES ('biz_1', 'Acme', 'en', 'ACME', 7, 0, true, true, '2026-11-01')"
                )
            )
        migrate.upgrade("0003")
        assert {
            "portal_test_provider_cards",
            "portal_test_provider_setups",
            "portal_test_provider_charges",
        } <= _portal_tables(engine)
        with engine.connect() as connection:
            assert (
                connection.scalar(sa.text("SELECT invoice_counter_live FROM portal_businesses"))
                == 7
            )
        migrate.downgrade("0002")
        assert not any(name.startswith("portal_test_provider_") for name in _portal_tables(engine))
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT name FROM portal_businesses")) == "Acme"


def test_0004_adds_the_document_store_to_a_database_in_use(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """The document store arrives beside the tables of 0003, and leaves them on the way down."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    with app.app_context():
        migrate.upgrade("0003")
        migrate.upgrade("0004")
        assert "portal_documents" in _portal_tables(engine)
        migrate.downgrade("0003")
        tables = _portal_tables(engine)
        assert "portal_documents" not in tables and "portal_test_provider_charges" in tables


def test_0005_gives_existing_refunds_their_payments_customer(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """Refunds made before 0005 take their payment's customer, and the history shows them."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    rows = [
        "INSERT INTO portal_businesses (id, public_id, name, default_locale, invoice_prefix, "
        "invoice_counter_live, invoice_counter_test, cancel_at_period_end, cancel_now, "
        "created_at) VALUES (1, 'acme', 'Acme', 'en', 'ACME', 0, 0, true, true, '2026-11-01')",
        *(
            "INSERT INTO portal_customers (id, public_id, business_id, mode, email, name, "
            f"created_at, updated_at) VALUES ({n}, 'cus_{n}', 1, 'test', 'c{n}@example.com', "
            f"'C{n}', '2026-11-01', '2026-11-01')"
            for n in (1, 2)
        ),
        *(
            "INSERT INTO portal_payments (id, public_id, customer_id, amount, currency, status, "
            f"created_at, updated_at) VALUES ({n}, 'py_{n}', {n}, 2900, 'USD', 'succeeded', "
            "'2026-11-02', '2026-11-02')"
            for n in (1, 2)
        ),
        "INSERT INTO portal_refunds (public_id, payment_id, amount, currency, status, reason, "
        "created_at) VALUES ('re_2', 2, 900, 'USD', 'succeeded', 'Goodwill', '2026-11-03')",
    ]
    with app.app_context():
        migrate.upgrade("0004")
        with engine.begin() as connection:
            for row in rows:
                connection.execute(sa.text(row))
        migrate.upgrade("0005")
        with engine.connect() as connection:
            assert connection.execute(
                sa.text("SELECT public_id, customer_id FROM portal_refunds")
            ).all() == [("re_2", 2)]
        migrate.upgrade()  # the models below are the newest schema's
        customer = portal.get_customer(portal.get_business("acme"), "cus_2", mode="test")
        assert customer is not None
        entries = history.billing_history(customer).entries
        assert [(e.kind, e.public_id) for e in entries] == [("refund", "re_2"), ("payment", "py_2")]
        other = portal.get_customer(portal.get_business("acme"), "cus_1", mode="test")
        assert other is not None
        assert [e.kind for e in history.billing_history(other).entries] == ["payment"]
        portal_state.session.close()  # its read locks would hold up the downgrade's ALTER TABLE
        migrate.downgrade("0004")
        with engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("portal_refunds")}
            assert "customer_id" not in columns
            assert connection.scalar(sa.text("SELECT reason FROM portal_refunds")) == "Goodwill"


def test_0006_gives_existing_records_their_customers_scope_and_external_ids(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """D1: records made before 0006 take their customer's business and mode, so an external
    id is unique per business and mode from then on; the way down keeps the data."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    rows = [
        "INSERT INTO portal_businesses (id, public_id, name, default_locale, invoice_prefix, "
        "invoice_counter_live, invoice_counter_test, cancel_at_period_end, cancel_now, "
        "created_at) VALUES (1, 'acme', 'Acme', 'en', 'ACME', 0, 0, true, true, '2026-11-01')",
        *(
            "INSERT INTO portal_customers (id, public_id, business_id, mode, email, name, "
            f"created_at, updated_at) VALUES ({n}, 'cus_{n}', 1, '{mode}', 'c@example.com', "
            f"'C{n}', '2026-11-01', '2026-11-01')"
            for n, mode in ((1, "test"), (2, "live"))
        ),
        *(
            "INSERT INTO portal_subscriptions (id, public_id, customer_id, product, plan, "
            "price_amount, currency, interval, interval_count, quantity, status, "
            "current_period_start, current_period_end, cancel_at_period_end, created_at, "
            f"updated_at) VALUES ({n}, 'sub_{n}', {n}, 'Cloud', 'Pro', 2900, 'USD', 'month', 1, "
            "1, 'active', '2026-11-01', '2026-12-01', false, '2026-11-01', '2026-11-01')"
            for n in (1, 2)
        ),
        *(
            "INSERT INTO portal_invoices (id, public_id, business_id, customer_id, "
            "subscription_id, number, status, currency, subtotal, tax, total, issued_at, "
            "paid_at, business_snapshot, customer_snapshot, created_at) VALUES "
            f"({n}, 'in_{n}', 1, {n}, {n}, 'ACME-{n}', 'paid', 'USD', 2900, 0, 2900, "
            "'2026-11-01', '2026-11-01', '{}', '{}', '2026-11-01')"
            for n in (1, 2)
        ),
        *(
            "INSERT INTO portal_payments (id, public_id, customer_id, invoice_id, amount, "
            f"currency, status, created_at, updated_at) VALUES ({n}, 'py_{n}', {n}, {n}, 2900, "
            "'USD', 'succeeded', '2026-11-02', '2026-11-02')"
            for n in (1, 2)
        ),
    ]
    scoped = ("portal_subscriptions", "portal_invoices", "portal_payments")
    with app.app_context():
        migrate.upgrade("0005")
        with engine.begin() as connection:
            for row in rows:
                connection.execute(sa.text(row))
        migrate.upgrade("0006")
        with engine.connect() as connection:
            for table in scoped:
                assert connection.execute(
                    sa.text(f"SELECT id, business_id, mode, external_id FROM {table} ORDER BY id")
                ).all() == [(1, 1, "test", None), (2, 1, "live", None)], table
        # The data API reads the models, which are at the latest revision.
        migrate.upgrade()
        acme = portal.get_business("acme")
        test_customer = portal.get_customer(acme, "cus_1", mode="test")
        live_customer = portal.get_customer(acme, "cus_2", mode="live")
        assert test_customer is not None and live_customer is not None
        assert test_customer.metadata_ == {}
        # The same external id in each mode is two records; twice in one mode is refused.
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE portal_subscriptions SET external_id = 'sub_x'"))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE portal_subscriptions SET mode = 'test' WHERE id = 2")
            )
        portal_state.session.close()
        migrate.downgrade("0005")
        with engine.connect() as connection:
            for table in scoped:
                columns = {c["name"] for c in sa.inspect(connection).get_columns(table)}
                assert not {"external_id", "metadata", "mode"} & columns, table
            assert "portal_webhook_events" not in _portal_tables(engine)
            assert connection.scalar(sa.text("SELECT count(*) FROM portal_payments")) == 2


def test_0007_allows_one_payment_in_flight_per_invoice(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """P2: from 0007 an invoice has at most one payment in flight, whatever races; the
    payments made before stay, and the way down keeps them."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    payment = (
        "INSERT INTO portal_payments (id, public_id, customer_id, business_id, mode, invoice_id, "
        "amount, currency, status, metadata, created_at, updated_at) VALUES ({n}, 'py_{n}', 1, "
        "1, 'test', 1, 2900, 'USD', '{status}', '{{}}', '2026-11-02', '2026-11-02')"
    )
    rows = [
        "INSERT INTO portal_businesses (id, public_id, name, default_locale, invoice_prefix, "
        "invoice_counter_live, invoice_counter_test, cancel_at_period_end, cancel_now, "
        "created_at) VALUES (1, 'acme', 'Acme', 'en', 'ACME', 0, 0, true, true, '2026-11-01')",
        "INSERT INTO portal_customers (id, public_id, business_id, mode, email, name, metadata, "
        "created_at, updated_at) VALUES (1, 'cus_1', 1, 'test', 'c@example.com', 'C1', '{}', "
        "'2026-11-01', '2026-11-01')",
        "INSERT INTO portal_invoices (id, public_id, business_id, mode, customer_id, number, "
        "status, currency, subtotal, tax, total, issued_at, business_snapshot, "
        "customer_snapshot, metadata, created_at) VALUES (1, 'in_1', 1, 'test', 1, 'ACME-1', "
        "'open', 'USD', 2900, 0, 2900, '2026-11-01', '{}', '{}', '{}', '2026-11-01')",
        payment.format(n=1, status="failed"),
        payment.format(n=2, status="pending"),
    ]
    with app.app_context():
        migrate.upgrade("0006")
        with engine.begin() as connection:
            for row in rows:
                connection.execute(sa.text(row))
        migrate.upgrade("0007")
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(sa.text(payment.format(n=3, status="requires_action")))
        with engine.begin() as connection:  # a failed one more is no payment in flight
            connection.execute(sa.text(payment.format(n=4, status="failed")))
        portal_state.session.close()
        migrate.downgrade("0006")
        with engine.begin() as connection:
            connection.execute(sa.text(payment.format(n=3, status="requires_action")))
            assert connection.scalar(sa.text("SELECT count(*) FROM portal_payments")) == 4


def test_0008_keeps_the_links_in_use_and_downgrades_back(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """T3, V1: links made before 0008 still open (they open the overview: no next page); the
    way down keeps them."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    rows = [
        "INSERT INTO portal_businesses (id, public_id, name, default_locale, invoice_prefix, "
        "invoice_counter_live, invoice_counter_test, cancel_at_period_end, cancel_now, "
        "created_at) VALUES (1, 'acme', 'Acme', 'en', 'ACME', 0, 0, true, true, '2026-11-01')",
        "INSERT INTO portal_customers (id, public_id, business_id, mode, email, name, "
        "created_at, updated_at) VALUES (1, 'cus_1', 1, 'test', 'c@example.com', 'C', "
        "'2026-11-01', '2026-11-01')",
        "INSERT INTO portal_login_links (id, token_hash, purpose, business_id, mode, "
        "customer_id, created_at, expires_at) VALUES (1, 'h1', 'email_login', 1, 'test', 1, "
        "'2026-11-01', '2026-11-02')",
    ]
    with app.app_context():
        migrate.upgrade("0007")
        with engine.begin() as connection:
            for row in rows:
                connection.execute(sa.text(row))
        migrate.upgrade("0008")
        with engine.connect() as connection:
            assert connection.execute(
                sa.text("SELECT token_hash, next_path FROM portal_login_links")
            ).all() == [("h1", None)]
        migrate.downgrade("0007")
        with engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("portal_login_links")}
            assert "next_path" not in columns
            assert connection.scalar(sa.text("SELECT token_hash FROM portal_login_links")) == "h1"


def test_0009_adds_the_catalogue_to_a_database_in_use(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """D1: businesses made before 0009 have every self-service switch off, their
    subscriptions are on no catalogue price and keep working; the way down keeps them."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    rows = [
        "INSERT INTO portal_businesses (id, public_id, name, default_locale, invoice_prefix, "
        "invoice_counter_live, invoice_counter_test, cancel_at_period_end, cancel_now, "
        "created_at) VALUES (1, 'acme', 'Acme', 'en', 'ACME', 0, 0, true, true, '2026-11-01')",
        "INSERT INTO portal_customers (id, public_id, business_id, mode, email, name, metadata, "
        "created_at, updated_at) VALUES (1, 'cus_1', 1, 'test', 'c@example.com', 'C', '{}', "
        "'2026-11-01', '2026-11-01')",
        "INSERT INTO portal_subscriptions (id, public_id, customer_id, business_id, mode, "
        "product, plan, price_amount, currency, interval, interval_count, quantity, status, "
        "current_period_start, current_period_end, cancel_at_period_end, metadata, created_at, "
        "updated_at) VALUES (1, 'sub_1', 1, 1, 'test', 'Cloud', 'Pro', 2900, 'USD', 'month', 1, "
        "1, 'active', '2026-11-01', '2026-12-01', false, '{}', '2026-11-01', '2026-11-01')",
    ]
    with app.app_context():
        migrate.upgrade("0008")
        with engine.begin() as connection:
            for row in rows:
                connection.execute(sa.text(row))
        # To the newest revision through 0009: the models below have the later columns too.
        migrate.upgrade()
        acme = portal.get_business("acme")
        assert acme is not None
        assert not (acme.plan_changes or acme.quantity_changes or acme.add_ons or acme.pause)
        assert (acme.downgrades_at, acme.proration) == ("period_end", "none")
        subscription = portal.get_subscription(acme, "sub_1", mode="test")
        assert subscription is not None and subscription.price_id is None
        assert portal.change_quantity(subscription, 2).amount == 5800
        assert portal.switch_options(subscription) == []
        product = portal.create_product(acme, "Cloud", mode="test")
        price = portal.create_price(product, name="Pro", amount=2900, currency="USD")
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE portal_subscriptions SET price_id = :price"), {"price": price.id}
            )
        portal_state.session.close()
        migrate.downgrade("0008")
        with engine.connect() as connection:
            assert not {"portal_products", "portal_prices"} & _portal_tables(engine)
            columns = {c["name"] for c in sa.inspect(connection).get_columns("portal_businesses")}
            assert "plan_changes" not in columns
            assert connection.scalar(sa.text("SELECT quantity FROM portal_subscriptions")) == 2


def test_0010_adds_cancellation_reasons_to_a_database_in_use(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """D1: subscriptions cancelled before 0010 have no reason and keep their cancellation; one
    cancelled after keeps its reason; the way down keeps the subscriptions."""
    app = app_factory(empty_database_url)
    engine = app.extensions["customer_portal"].engine
    rows = [
        "INSERT INTO portal_businesses (id, public_id, name, default_locale, invoice_prefix, "
        "invoice_counter_live, invoice_counter_test, cancel_at_period_end, cancel_now, "
        "plan_changes, quantity_changes, add_ons, pause, cancellation_reasons, "
        "retention_offer, downgrades_at, proration, created_at) VALUES (1, 'acme', 'Acme', "
        "'en', 'ACME', 0, 0, true, true, false, false, false, false, false, false, "
        "'period_end', 'none', '2026-11-01')",
        "INSERT INTO portal_customers (id, public_id, business_id, mode, email, name, metadata, "
        "created_at, updated_at) VALUES (1, 'cus_1', 1, 'test', 'c@example.com', 'C', '{}', "
        "'2026-11-01', '2026-11-01')",
        "INSERT INTO portal_subscriptions (id, public_id, customer_id, business_id, mode, "
        "product, plan, price_amount, currency, interval, interval_count, quantity, status, "
        "current_period_start, current_period_end, cancel_at_period_end, cancelled_at, metadata, "
        "created_at, updated_at) VALUES (1, 'sub_1', 1, 1, 'test', 'Cloud', 'Pro', 2900, 'USD', "
        "'month', 1, 1, 'active', '2026-11-01', '2099-12-01', true, '2026-11-02', '{}', "
        "'2026-11-01', '2026-11-01')",
    ]
    with app.app_context():
        migrate.upgrade("0009")
        with engine.begin() as connection:
            for row in rows:
                connection.execute(sa.text(row))
        migrate.upgrade("0010")
        with engine.connect() as connection:
            assert connection.execute(
                sa.text(
                    "SELECT cancel_at_period_end, cancellation_reason FROM portal_subscriptions"
                )
            ).one() == (True, None)
        # To the newest revision through 0010: the models below have any later columns too.
        migrate.upgrade()
        acme = portal.get_business("acme")
        assert acme is not None
        subscription = portal.get_subscription(acme, "sub_1", mode="test")
        assert subscription is not None and subscription.cancel_at_period_end
        assert (subscription.cancellation_reason, subscription.cancellation_comment) == (None, None)
        portal.undo_cancellation(subscription)
        portal.update_business(acme, cancellation_reasons=True)
        portal.cancel_subscription(subscription, at_period_end=True, reason="other", comment="Hi")
        portal_state.session.close()
        with engine.connect() as connection:
            assert connection.execute(
                sa.text(
                    "SELECT cancellation_reason, cancellation_comment FROM portal_subscriptions"
                )
            ).one() == ("other", "Hi")
        migrate.downgrade("0009")
        with engine.connect() as connection:
            columns = {
                c["name"] for c in sa.inspect(connection).get_columns("portal_subscriptions")
            }
            assert "cancellation_reason" not in columns
            assert connection.scalar(
                sa.text("SELECT cancel_at_period_end FROM portal_subscriptions")
            )
