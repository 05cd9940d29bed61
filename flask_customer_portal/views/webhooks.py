"""The payment providers' webhook endpoints: Stripe's, one per business.

``POST {prefix}/webhooks/stripe/<business public id>`` takes Stripe's events
for that business, in test or live mode as each event's ``livemode`` says.
The signature is the only credential: the endpoint needs no CSRF token (it is
exempt, and from nothing else), its body is capped, its deliveries are rate
limited per business, and the failures of a client address (a wrong
signature) are counted apart, as the HTTP API's wrong keys are. Answers are
JSON in the HTTP API's one shape; see ``docs/stripe-webhooks.md``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from .. import stripe_events
from ..api import json_blueprint
from ..businesses import get_business
from ..config import config_value
from ..errors import InvalidTransition, ValidationError
from ..providers.stripe_config import client_from_config
from ..state import PortalState
from .guard import cap_body

NAME = "customer_portal_webhooks"

#: The largest event body taken; Stripe's events are a few KiB, rarely over 100.
MAX_EVENT_BYTES = 512 * 1024


def create_blueprint(state: PortalState) -> Blueprint:
    """Build the webhooks' blueprint for one app, with that app's rate limiter."""
    blueprint = Blueprint(NAME, __name__)
    per_business = state.limiter.limit(
        lambda: config_value("STRIPE_WEBHOOK_RATE_LIMIT"),
        key_func=lambda: "stripe-webhook:" + request.path,
    )
    failures_per_ip = state.limiter.limit(
        lambda: config_value("API_AUTH_FAILURE_RATE_LIMIT"),
        key_func=lambda: "stripe-webhook-failure:" + get_remote_address(),
        deduct_when=lambda response: response.status_code == 400,
    )
    blueprint.add_url_rule(
        "/stripe/<business_id>",
        "stripe",
        per_business(failures_per_ip(stripe_webhook)),
        methods=["POST"],
        provide_automatic_options=False,
    )
    blueprint.before_request(
        lambda: cap_body(MAX_EVENT_BYTES, f"The body may be at most {MAX_EVENT_BYTES // 1024} KiB.")
    )
    json_blueprint(blueprint)
    return blueprint


def stripe_webhook(business_id: str) -> Response:
    """Take one Stripe event for the business ``business_id``."""
    business = get_business(business_id[:64])
    if business is None:
        raise NotFound(f"No business {business_id[:64]!r}.")
    try:
        event = stripe_events.verify(
            request.get_data(cache=True),
            request.headers.get("Stripe-Signature"),
            stripe_events.signing_secrets(),
        )
    except stripe_events.InvalidEvent as error:
        raise BadRequest(str(error)) from None
    try:
        handled = stripe_events.handle(business, event, client=_client())
    except (ValidationError, InvalidTransition) as error:
        # The event disagrees with the portal's records now (often: an event of the
        # same object delivered out of order); Stripe delivers it again later.
        raise Conflict(f"The event could not be applied yet: {error}") from None
    return jsonify(received=True, event=handled.event_id, status=handled.status)


def _client() -> Any:
    # What an event names by id only is looked up when the portal has a key to call Stripe.
    return client_from_config() if config_value("STRIPE_SECRET_KEY") else None
