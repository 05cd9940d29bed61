"""The ``flask portal`` command group."""

from __future__ import annotations

import json
import signal
import threading
from datetime import timedelta
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from . import access, cancellation, emails, migrate, retention, settlement
from .businesses import get_business
from .config import config_value
from .links import static_link
from .models import MODES, Business, Customer
from .proxies import portal
from .records import find_customer
from .stripe_cli import stripe_cli


@click.group("portal")
def portal_cli() -> None:
    """Manage the customer portal."""


portal_cli.add_command(stripe_cli)


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


# -- Access --------------------------------------------------------------------------

_MODE = click.Choice(MODES)


def _business(business_id: str) -> Business:
    business = get_business(business_id)
    if business is None:
        raise click.ClickException(f"No business with the id {business_id!r}.")
    return business


def _customer(email: str, business_id: str, mode: str | None) -> Customer:
    business = _business(business_id)
    mode = mode or config_value("DEFAULT_MODE")
    customer = find_customer(business, email, mode=mode)
    if customer is None:
        raise click.ClickException(
            f"No customer with the email {email!r} in {business.public_id} ({mode} mode)."
        )
    return customer


def _send_now() -> int:
    # A command ends in a moment: send here rather than leave the mail to a
    # background thread that would die with the process. Returns how many were sent.
    if portal.dispatcher is not None:
        portal.dispatcher.stop()
    sent, _ = emails.send_queued()
    return sent


def _echo_json(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, indent=2))


@portal_cli.command("create-api-key")
@click.option("--business", "business_id", required=True, help="The business's public id.")
@click.option("--mode", required=True, type=_MODE, help="The mode the key works in.")
@click.option("--name", default="", help="A label to tell keys apart, such as 'billing backend'.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: id, key, mode, business.")
@with_appcontext
def create_api_key(business_id: str, mode: str, name: str, as_json: bool) -> None:
    """Create an API key for the HTTP API of one business and mode; print it once."""
    business = _business(business_id)
    raw, key = access.create_api_key(business, mode, name=name)
    if as_json:
        _echo_json({"id": key.public_id, "key": raw, "mode": mode, "business": business_id})
        return
    click.echo(f"Created API key {key.public_id} for {business.public_id} ({mode} mode):\n")
    click.echo(f"    {raw}\n")
    click.echo("Copy it now: it is stored hashed and will not be shown again.")


@portal_cli.command("revoke-api-key")
@click.argument("key_id")
@with_appcontext
def revoke_api_key(key_id: str) -> None:
    """Revoke the API key KEY_ID (key_...): it stops working at once."""
    if not access.revoke_api_key(key_id):
        raise click.ClickException(f"No live API key with the id {key_id!r}.")
    click.echo(f"Revoked API key {key_id}.")


@portal_cli.command("invite")
@click.argument("email")
@click.option("--business", "business_id", required=True, help="The business's public id.")
@click.option("--mode", type=_MODE, help="Default: CUSTOMER_PORTAL_DEFAULT_MODE.")
@click.option("--send-email", is_flag=True, help="Also email a sign-in link to the customer.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: customer_id, static_link, dynamic_link, expires_at.",
)
@with_appcontext
def invite(email: str, business_id: str, mode: str | None, send_email: bool, as_json: bool) -> None:
    """Print a customer's static link and a fresh single-use dynamic link (share invite)."""
    customer = _customer(email, business_id, mode)
    static = static_link(customer.business, customer.mode)
    link = access.create_portal_session(customer, send_email=send_email)
    sent = _send_now() if send_email else 0
    expires_at = link.expires_at.isoformat(timespec="seconds")
    if as_json:
        _echo_json(
            {
                "customer_id": customer.public_id,
                "static_link": static,
                "dynamic_link": link.url,
                "expires_at": expires_at,
            }
        )
        return
    click.echo(f"Customer {customer.email} ({customer.public_id}, {customer.mode} mode)\n")
    click.echo("Static link (never expires; the customer types their email):")
    click.echo(f"    {static}\n")
    click.echo(f"Dynamic link (works once, until {expires_at}):")
    click.echo(f"    {link.url}")
    if send_email and sent:
        click.echo(f"\nA sign-in link of its own was emailed to {customer.email}.")
    elif send_email:
        click.echo(
            f"\nThe email to {customer.email} could not be sent yet; it is retried later"
            " (see the log for why)."
        )


@portal_cli.command("revoke-sessions")
@click.argument("email")
@click.option("--business", "business_id", required=True, help="The business's public id.")
@click.option("--mode", type=_MODE, help="Default: CUSTOMER_PORTAL_DEFAULT_MODE.")
@with_appcontext
def revoke_sessions(email: str, business_id: str, mode: str | None) -> None:
    """Sign a customer out everywhere: end all their portal sessions on the server."""
    customer = _customer(email, business_id, mode)
    ended = access.revoke_sessions(customer)
    click.echo(f"Ended {ended} session{'s' if ended != 1 else ''} of {customer.email}.")


@portal_cli.command("send-mail")
@click.option(
    "--loop",
    is_flag=True,
    help="Keep sending as mail comes due, until stopped (SIGTERM or Ctrl+C): a mail worker.",
)
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="With --loop: seconds to wait when nothing is due.",
)
@with_appcontext
def send_mail(loop: bool, interval: float) -> None:
    """Send the queued mail that is due (with MAIL_DISPATCH "manual"): once, or as a worker.

    Several workers may run at once, on one machine or several: each message
    is claimed by one of them and sent once.
    """
    if not loop:
        sent, failed = emails.send_queued()
        click.echo(f"Sent {sent} message{'s' if sent != 1 else ''}; {failed} failed.")
        if failed:
            click.echo("Failed messages are retried later; see the log for the reasons.")
        return
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    click.echo("Sending queued mail as it comes due; stop with SIGTERM or Ctrl+C.")
    while not stopping.is_set():
        try:
            sent, failed = emails.send_queued()
        except Exception:  # the database went away a moment: keep the worker alive
            portal.session.rollback()
            current_app.logger.exception("sending queued mail failed; trying again")
            sent = failed = 0
        if sent or failed:
            click.echo(f"Sent {sent} message{'s' if sent != 1 else ''}; {failed} failed.")
        else:
            stopping.wait(interval)
    click.echo("Stopped.")


@portal_cli.command("end-cancellations")
@with_appcontext
def end_cancellations() -> None:
    """End the subscriptions whose cancellation at the end of the period has come (cron)."""
    ended = cancellation.end_due_cancellations()
    click.echo(f"Ended {ended} subscription{'s' if ended != 1 else ''}.")


@portal_cli.command("reconcile")
@click.option(
    "--older-than",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    help="Settle only payment attempts started at least this many seconds ago.",
)
@with_appcontext
def reconcile(older_than: int) -> None:
    """Settle payment attempts whose outcome is unknown by asking the provider (cron).

    A crash or a time-out while charging leaves an attempt pending; this looks
    it up with the same idempotency key and records the outcome: it never
    charges again.
    """
    settled = settlement.reconcile(older_than=timedelta(seconds=older_than))
    _send_now()
    click.echo(f"Settled {settled} payment attempt{'s' if settled != 1 else ''}.")


@portal_cli.command("purge")
@with_appcontext
def purge() -> None:
    """Delete links, sessions, sent mail and documents over RETENTION_DAYS old (cron)."""
    purged = retention.purge()
    days = config_value("RETENTION_DAYS")
    click.echo(f"Deleted what ended more than {days} days ago:")
    click.echo(f"  used or expired links:     {purged.links}")
    click.echo(f"  ended portal sessions:     {purged.sessions}")
    click.echo(f"  sent or dropped messages:  {purged.messages}")
    click.echo(f"  rendered documents:        {purged.documents}")
