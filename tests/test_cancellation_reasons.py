"""Cancelling asks why, where the business turns it on: the page, the data API, the signal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal import signals
from flask_customer_portal.cancellation_reasons import reasons_for
from flask_customer_portal.config import check
from flask_customer_portal.errors import ConfigurationError, ValidationError

from .conftest import csrf_token
from .helpers import Received, record_signals, signalled

XSS = '<script>alert("x")</script>'


@pytest.fixture
def received(app: Flask) -> Iterator[Received]:
    with record_signals(app, {"cancelled": signals.subscription_cancelled}) as seen:
        yield seen


@pytest.fixture
def asking(subscription: m.Subscription) -> m.Subscription:
    """``subscription``, its business asking cancelling customers why."""
    portal.update_business(subscription.customer.business, cancellation_reasons=True)
    return subscription


def cancel_url(subscription: m.Subscription) -> str:
    return f"/portal/subscriptions/{subscription.public_id}/cancel"


def post_cancel(
    client: FlaskClient,
    subscription: m.Subscription,
    headers: dict[str, str] | None = None,
    **form: str,
) -> Any:
    page = client.get(cancel_url(subscription), headers=headers)
    data = {"csrf_token": csrf_token(page.text), "when": "period_end", **form}
    return client.post(cancel_url(subscription), data=data, headers=headers)


def feedback(session: Session, subscription: m.Subscription) -> tuple[Any, ...]:
    session.refresh(subscription)
    return (
        subscription.cancel_at_period_end,
        subscription.cancellation_reason,
        subscription.cancellation_comment,
    )


def test_switch_off_the_page_asks_nothing_and_keeps_no_reason(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
    received: Received,
) -> None:
    """D1: with the switch off the page is as it was: no reason, no comment, and a reason
    slipped into the form is not kept."""
    page = client.get(cancel_url(subscription)).text
    assert 'name="reason"' not in page and 'name="comment"' not in page
    assert "Why are you cancelling?" not in page
    answer = post_cancel(client, subscription, reason="too_expensive", comment="meh")
    assert answer.status_code == 303
    assert feedback(session, subscription) == (True, None, None)
    assert signalled(received, "cancelled") == [
        {
            "customer": subscription.customer.public_id,
            "subscription": subscription.public_id,
            "at_period_end": True,
            "reason": None,
            "comment": None,
        }
    ]


def test_switch_on_a_reason_is_required_and_nothing_is_cancelled_without_one(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    asking: m.Subscription,
    received: Received,
) -> None:
    """D1: the page lists the built-in reasons; sent without one it says so clearly, keeps
    what was typed (escaped: V2), and nothing is cancelled or signalled."""
    page = client.get(cancel_url(asking)).text
    assert "Why are you cancelling?" in page
    for code in ("too_expensive", "missing_features", "switched_service", "other"):
        assert f'value="{code}"' in page
    assert "It is too expensive" in page and 'maxlength="500"' in page
    answer = post_cancel(client, asking, comment=XSS)
    assert answer.status_code == 400
    assert "Choose the reason you are cancelling." in answer.text
    assert XSS not in answer.text and "&lt;script&gt;" in answer.text
    assert feedback(session, asking) == (False, None, None)
    assert received == []
    answer = post_cancel(client, asking, reason="bored")
    assert answer.status_code == 400 and "Choose one of the reasons in the list." in answer.text
    assert feedback(session, asking) == (False, None, None)


def test_the_reason_and_comment_are_stored_and_signalled(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    asking: m.Subscription,
    received: Received,
) -> None:
    """D1: the chosen reason and the stripped comment are kept with the cancellation and sent
    in the signal; the comment is kept as text, never as markup (V2)."""
    answer = post_cancel(client, asking, reason="missing_features", comment=f"  {XSS}\n")
    assert answer.status_code == 303
    assert feedback(session, asking) == (True, "missing_features", XSS)
    [sent] = signalled(received, "cancelled")
    assert (sent["reason"], sent["comment"]) == ("missing_features", XSS)


def test_a_comment_too_long_or_with_a_card_number_cancels_nothing(
    client: FlaskClient, session: Session, signed_in: m.Customer, asking: m.Subscription
) -> None:
    """P1: a card number typed as a comment is refused before anything is stored."""
    answer = post_cancel(client, asking, reason="other", comment="x" * 501)
    assert answer.status_code == 400
    assert "Your comment must be at most 500 characters." in answer.text
    answer = post_cancel(client, asking, reason="other", comment="my card 4242424242424242")
    assert answer.status_code == 400
    assert feedback(session, asking) == (False, None, None)


def test_the_reasons_are_translated(
    client: FlaskClient, signed_in: m.Customer, asking: m.Subscription
) -> None:
    """The built-in reasons are shown in the customer's language."""
    page = client.get(cancel_url(asking), headers={"Accept-Language": "pt-BR"}).text
    assert 'lang="pt-BR"' in page
    assert "It is too expensive" not in page and "Por que" in page


def test_the_merchants_own_list_is_shown_as_given(
    app: Flask, client: FlaskClient, session: Session, signed_in: m.Customer, asking: m.Subscription
) -> None:
    """The setting names a business's list; its labels are shown as given, and only its
    codes are accepted."""
    app.config["CUSTOMER_PORTAL_CANCELLATION_REASONS"] = {
        "acme": [("price", "Price <too> high"), ("moving", "Moving on")],
        "*": [("other", "Other")],
    }
    assert [code for code, _label in reasons_for(asking.customer.business)] == ["price", "moving"]
    page = client.get(cancel_url(asking)).text
    assert "Price &lt;too&gt; high" in page and "Moving on" in page
    assert "It is too expensive" not in page
    assert post_cancel(client, asking, reason="too_expensive").status_code == 400
    assert post_cancel(client, asking, reason="moving").status_code == 303
    assert feedback(session, asking) == (True, "moving", None)


@pytest.mark.parametrize(
    "setting",
    [
        {"acme": []},
        {"acme": [("Too Expensive", "Price")]},
        {"acme": [("price", "")]},
        {"acme": [("price", "Price"), ("price", "Cost")]},
        {"acme": ["price"]},
    ],
)
def test_a_malformed_list_of_reasons_fails_at_start_up(app: Flask, setting: Any) -> None:
    """A list the portal could not use is refused when the app starts, not on the page."""
    app.config["CUSTOMER_PORTAL_CANCELLATION_REASONS"] = setting
    with pytest.raises(ConfigurationError, match="CANCELLATION_REASONS"):
        check(app)


def test_the_data_api_checks_the_reason_and_comment(
    session: Session, asking: m.Subscription, received: Received
) -> None:
    """D1: bad input is refused with a clear error and writes nothing (P1 for the comment);
    a cancellation recorded from the processor needs no reason."""
    for reason, comment, code in [
        (None, None, "reason_required"),
        ("", "why not", "reason_required"),
        ("bored", None, "invalid_reason"),
        ("other", "x" * 501, "too_long"),
        ("other", "4242 4242 4242 4242", "card_number"),
        ("other", 42, "not_text"),
    ]:
        with pytest.raises(ValidationError) as error:
            portal.cancel_subscription(asking, at_period_end=True, reason=reason, comment=comment)
        assert error.value.code == code
    assert feedback(session, asking) == (False, None, None)
    assert received == []
    portal.cancel_subscription(asking, at_period_end=True, reason="other", comment="  ")
    assert feedback(session, asking) == (True, "other", None)
    assert signalled(received, "cancelled")[0]["reason"] == "other"


def test_a_processor_cancellation_keeps_the_customers_reason(
    session: Session, asking: m.Subscription
) -> None:
    """Ending at once from the processor, without a reason, keeps the one the customer gave."""
    portal.cancel_subscription(asking, at_period_end=True, reason="not_using", comment="Busy")
    portal.cancel_subscription(asking, at_period_end=False, offered_only=False)
    session.refresh(asking)
    assert (asking.status, asking.cancellation_reason, asking.cancellation_comment) == (
        "cancelled",
        "not_using",
        "Busy",
    )


def test_undo_clears_the_reason(session: Session, asking: m.Subscription) -> None:
    """A cancellation taken back takes its reason with it; the next one records its own."""
    portal.cancel_subscription(asking, at_period_end=True, reason="too_expensive", comment="$$")
    portal.undo_cancellation(asking)
    assert feedback(session, asking) == (False, None, None)
    portal.cancel_subscription(asking, at_period_end=True, reason="other")
    assert feedback(session, asking) == (True, "other", None)
