"""``flask portal stripe ...``: the Stripe commands of the portal's command group."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from .businesses import get_business
from .config import config_value
from .errors import ConfigurationError, ValidationError
from .models import MODES
from .providers.stripe_config import client_from_config
from .stripe_backfill import stripe_customer_id, sync_customer


@click.group("stripe")
def stripe_cli() -> None:
    """Work with Stripe: bring the portal's records up to date from it."""


@stripe_cli.command("sync")
@click.option(
    "--customer",
    "reference",
    required=True,
    help="The customer: their Stripe id (cus_...), portal id or email.",
)
@click.option("--business", "business_id", required=True, help="The business's public id.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    help="The mode a portal id or email is looked up in. Default: CUSTOMER_PORTAL_DEFAULT_MODE.",
)
@with_appcontext
def sync(reference: str, business_id: str, mode: str | None) -> None:
    """Fetch a customer from Stripe and bring the portal's records of them up to date.

    Their cards, subscriptions, paid and failed renewals and refunds are
    applied as the webhooks apply them; running it again changes nothing.
    """
    business = get_business(business_id)
    if business is None:
        raise click.ClickException(f"No business with the id {business_id!r}.")
    try:
        client = client_from_config()
        stripe_id = stripe_customer_id(
            business, reference, client, mode=mode or config_value("DEFAULT_MODE")
        )
        report = sync_customer(business, client, stripe_id)
    except (ConfigurationError, ValidationError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"Customer {report.customer.public_id} ({stripe_id}): {len(report.cards)} cards, "
        f"{len(report.subscriptions)} subscriptions, {len(report.invoices)} invoices, "
        f"{len(report.refunds)} refunds applied."
    )
