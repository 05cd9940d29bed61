"""The ``flask portal`` command group."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from . import migrate


@click.group("portal")
def portal_cli() -> None:
    """Manage the customer portal."""


@portal_cli.group("db")
def db_cli() -> None:
    """Manage the portal's database schema."""


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the portal's tables to REVISION (default: the newest)."""
    migrate.upgrade(revision)
    click.echo(f"Portal schema at {migrate.current_revision()}.")


@db_cli.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the portal's tables to REVISION ("base" removes them)."""
    migrate.downgrade(revision)
    click.echo(f"Portal schema at {migrate.current_revision()}.")


@db_cli.command("current")
@with_appcontext
def db_current() -> None:
    """Show the revision of the portal's tables and whether it is the newest."""
    current, head = migrate.current_revision(), migrate.head_revision()
    state = "up to date" if current == head else f"behind: run 'flask portal db upgrade' ({head})"
    click.echo(f"{current or 'empty'} ({state})")
