"""Stripe's webhook events: checking their signature, keeping each once, applying them.

:func:`verify` checks a delivery's ``Stripe-Signature`` header with the
endpoint's signing secret, as Stripe's SDK does (refusing a timestamp more
than :data:`TOLERANCE` seconds away). :func:`handle` applies a verified event
to one business, in the mode of the event's ``livemode``, at most once:

- The event's id is claimed first, in ``portal_webhook_events``: the row is
  written (not committed) before anything else, so a second delivery of the
  same event waits on it (PostgreSQL's unique index) and then finds it.
- The event's effect is made through the data API, whose first commit
  carries that row: an event with one change (most) is recorded in the same
  transaction as its effect, and one whose change is rolled back is not
  recorded at all.
- An event with several changes (a subscription updated in several ways)
  that fails after its first one gives its claim back and answers an error:
  Stripe delivers it again, and as the changes are convergent
  (:mod:`.stripe_sync`), the retry makes only those still missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from . import stripe_cards as cards
from . import stripe_sync as sync
from .config import config_value
from .errors import ConfigurationError, CustomerPortalError
from .models import Business, WebhookEvent
from .providers.stripe_sdk import sdk
from .proxies import portal

#: The provider name of Stripe's events in ``portal_webhook_events``.
PROVIDER = "stripe"

#: Seconds a signature's timestamp may be away from now: the Stripe SDK's tolerance.
TOLERANCE = 300

#: The events the portal applies; any other is recorded and ignored.
HANDLED_EVENTS = (
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "payment_method.attached",
    "payment_method.detached",
    "charge.refunded",
)


class InvalidEvent(CustomerPortalError):
    """A delivery that is not a genuine, recent Stripe event: refused with 400."""


def signing_secrets() -> list[str]:
    """Return the configured signing secrets of the webhook endpoints.

    :raises ConfigurationError: ``CUSTOMER_PORTAL_STRIPE_WEBHOOK_SECRET`` is not set.
    """
    value = config_value("STRIPE_WEBHOOK_SECRET")
    secrets = [value] if isinstance(value, str) else list(value or ())
    if not any(secrets):
        raise ConfigurationError(
            "CUSTOMER_PORTAL_STRIPE_WEBHOOK_SECRET is not set: copy the signing secret "
            "(whsec_...) of the webhook endpoint from Stripe's dashboard"
        )
    return [secret for secret in secrets if secret]


def verify(payload: bytes, header: str | None, secrets: Sequence[str]) -> dict[str, Any]:
    """Return the event a delivery carries, once its signature is checked with one of ``secrets``.

    :raises InvalidEvent: no signature, a wrong one, a timestamp more than
        :data:`TOLERANCE` seconds away, or a body that is not an event.
    """
    stripe = sdk()
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE)
            break
        except stripe.SignatureVerificationError as error:
            reason = str(error)
    else:
        raise InvalidEvent(f"The Stripe-Signature header does not verify: {reason}")
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidEvent("The body is not JSON.") from None
    if (
        not isinstance(event, dict)
        or event.get("object") != "event"
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance((event.get("data") or {}).get("object"), dict)
    ):
        raise InvalidEvent("The body is not a Stripe event.")
    return event


@dataclass(frozen=True)
class Handled:
    """What came of a delivery: ``"applied"``, ``"ignored"`` (a type the portal does not
    apply, or about records it does not have) or ``"duplicate"`` (seen before)."""

    status: Literal["applied", "ignored", "duplicate"]
    event_id: str
    type: str


def handle(
    business: Business,
    event: Mapping[str, Any],
    *,
    client: Any = None,
) -> Handled:
    """Apply a verified Stripe event to ``business`` once; commit.

    The mode is the event's (``livemode``). A replayed event (same id)
    changes nothing. See the module's notes on what is recorded when.

    :param client: a ``stripe.StripeClient`` (or ``None``) to look up what an
        event names by id only: a price's product, a customer's default card.
    :raises CustomerPortalError: the data API refused a change (its claim
        is given back: Stripe's retry applies it again).
    """
    session = portal.session
    event_id, kind = str(event["id"])[:255], str(event["type"])[:100]
    mode = "live" if event.get("livemode") else "test"
    if _seen(event_id):
        return Handled("duplicate", event_id, kind)
    session.add(
        WebhookEvent(
            provider=PROVIDER, event_id=event_id, type=kind, business_id=business.id, mode=mode
        )
    )
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return Handled("duplicate", event_id, kind)
    try:
        applied = _apply(business, mode, kind, event["data"]["object"], client)
        session.commit()
    except Exception:
        session.rollback()
        _release(event_id)
        raise
    return Handled("applied" if applied else "ignored", event_id, kind)


def _seen(event_id: str) -> bool:
    found = portal.session.scalar(
        select(WebhookEvent.id).filter_by(provider=PROVIDER, event_id=event_id)
    )
    return found is not None


def _release(event_id: str) -> None:
    # The first change committed the claim; the event is not done: let the retry in.
    session = portal.session
    session.execute(delete(WebhookEvent).filter_by(provider=PROVIDER, event_id=event_id))
    session.commit()
    current_app.logger.warning("stripe event %s failed; Stripe will deliver it again", event_id)


def _apply(
    business: Business,
    mode: str,
    kind: str,
    data: Mapping[str, Any],
    client: Any,
) -> bool:
    if kind in ("invoice.paid", "invoice.payment_succeeded"):
        return sync.apply_paid_invoice(business, mode, data) is not None
    if kind == "invoice.payment_failed":
        return sync.apply_failed_invoice(business, mode, data) is not None
    if kind.startswith("customer.subscription.") and kind in HANDLED_EVENTS:
        return sync.apply_subscription(business, mode, data, client=client) is not None
    if kind == "payment_method.attached":
        return cards.apply_attached_card(business, mode, data, client=client) is not None
    if kind == "payment_method.detached":
        return cards.apply_detached_card(business, mode, data) is not None
    if kind == "charge.refunded":
        return sync.apply_refunded_charge(business, mode, data) is not None
    return False
