"""The store's commands: ``flask --app example_app init-db`` and ``seed-demo``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import event, select

from flask_customer_portal import get_business, static_link
from flask_customer_portal.migrate import upgrade

from . import BUSINESS_ID, MODE, demo
from .models import Staff, db


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the portal's and the store's tables, and the staff account."""
    init_db()
    click.echo("Database ready.")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Fill the database with the demo business and its customers (once)."""
    init_db()
    business = get_business(BUSINESS_ID)
    if business is not None:
        click.echo(f"Business {BUSINESS_ID!r} already exists; nothing seeded.")
    else:
        with _without_waiting_for_the_disk():
            count = demo.seed(datetime.now(UTC))
        click.echo(f"Seeded business {BUSINESS_ID!r} with {count} customers.")
        business = get_business(BUSINESS_ID)
        assert business is not None
    # Set by create_app in debug mode, required by the portal in production.
    site = current_app.config["CUSTOMER_PORTAL_EXTERNAL_URL"]
    click.echo(
        "\nRun the store: flask --app example_app run --debug\n"
        f"Store:        {site}/\n"
        f"Staff pages:  {site}/staff/login\n"
        f"  email:      {current_app.config['STAFF_EMAIL']}\n"
        f"  password:   {current_app.config.get('STAFF_PASSWORD', '(your STAFF_PASSWORD)')}\n"
        f"Portal login: {static_link(business, MODE)}\n"
        "  try ana@example.com (active, a year of invoices, license keys),\n"
        "  bruno@example.com (on hold, dues to pay), carla@example.com (cancelled)\n"
        f"Sent mail:    {site}/dev/mail (when no MAIL_SERVER is set)\n"
        "Dynamic link: flask --app example_app --debug portal invite ana@example.com "
        "--business acme"
    )


@contextmanager
def _without_waiting_for_the_disk() -> Iterator[None]:
    """Let SQLite commit without waiting for the disk while the block runs.

    The seed makes about 1,300 commits (each call of the data API is one
    transaction, as the data API promises), and SQLite waits for the disk at
    each one: 1.5 of the seed's 3.5 seconds. With ``PRAGMA synchronous = OFF``
    it hands the data to the operating system and carries on. A crash of the
    command still rolls back as usual; only a crash of the machine itself, or a
    power cut, in the middle of the seed could leave a damaged database, which
    is then deleted and seeded again. The store runs with SQLite's defaults: the
    connections are closed after the block. Other databases are left alone.
    """
    engine = db.engine
    if engine.dialect.name != "sqlite":
        yield
        return

    def unsynced(dbapi_connection: Any, *_: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.close()

    event.listen(engine, "checkout", unsynced)
    try:
        yield
    finally:
        event.remove(engine, "checkout", unsynced)
        db.session.remove()
        engine.dispose()


def init_db() -> None:
    """Bring the portal's tables up to date, create the store's, and the staff account."""
    upgrade()
    db.create_all()
    email = current_app.config["STAFF_EMAIL"].strip().lower()
    if db.session.scalar(select(Staff).filter_by(email=email)) is None:
        password = current_app.config.get("STAFF_PASSWORD")
        if not password:
            raise click.ClickException("Set STAFF_PASSWORD (FLASK_STAFF_PASSWORD) first.")
        staff = Staff(email=email)
        staff.set_password(password)
        db.session.add(staff)
        db.session.commit()
