"""The proration arithmetic: what a plan or quantity change charges or credits today.

Pure functions, so these tests build records in memory (no database) and let
Hypothesis pick amounts, quantities and moments. The rule under test (see
``flask_customer_portal.proration``): each line is the item's period amount ×
whole seconds left ÷ seconds in the period, rounded down to the minor unit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_customer_portal import ChangePreview, ValidationError, preview_change
from flask_customer_portal.models import Business, Customer, Price, Product, Subscription

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)  # 30 days: 2,592,000 seconds
PERIOD = int((END - START).total_seconds())

amounts = st.integers(min_value=0, max_value=10_000_000)
quantities = st.integers(min_value=1, max_value=500)
moments = st.integers(min_value=0, max_value=PERIOD).map(lambda s: START + timedelta(seconds=s))
SETTINGS = settings(max_examples=300, deadline=None)


def business(**switches: object) -> Business:
    options = {
        "plan_changes": True,
        "quantity_changes": True,
        "add_ons": True,
        "downgrades_at": "now",
        "proration": "prorate",
    }
    return Business(id=1, name="Acme", **(options | switches))


def price(amount: int, name: str, **terms: object) -> Price:
    product = Product(id=1, business_id=1, mode="test", name="Cloud", active=True)
    fields = {"currency": "USD", "interval": "month", "interval_count": 1, "add_on": False}
    return Price(
        public_id=f"price_{name.lower()}",
        product=product,
        business_id=1,
        mode="test",
        name=name,
        amount=amount,
        active=True,
        **(fields | terms),
    )


def subscription(plan: Price, quantity: int = 1, **switches: object) -> Subscription:
    customer = Customer(business_id=1, mode="test", business=business(**switches))
    return Subscription(
        public_id="sub_1",
        customer=customer,
        business_id=1,
        mode="test",
        price=plan,
        product="Cloud",
        plan=plan.name,
        price_amount=plan.amount,
        currency=plan.currency,
        interval="month",
        interval_count=1,
        quantity=quantity,
        status="active",
        current_period_start=START,
        current_period_end=END,
    )


def exact_share(amount: int, at: datetime) -> Fraction:
    return Fraction(amount * int((END - at).total_seconds()), PERIOD)


@SETTINGS
@given(old=amounts, new=amounts, quantity=quantities, at=moments)
def test_the_credit_never_exceeds_what_was_paid_for_the_unused_time(
    old: int, new: int, quantity: int, at: datetime
) -> None:
    """Neither line exceeds its exact share; every amount is a whole number of minor units."""
    if old == new:
        return
    preview = preview_change(
        subscription(price(old, "Old"), quantity), price=price(new, "New"), at=at
    )
    credit, charge = preview.lines
    assert credit.kind == "unused" and charge.kind == "remaining"
    assert 0 <= -credit.amount <= exact_share(old * quantity, at)
    assert 0 <= charge.amount <= exact_share(new * quantity, at)
    assert all(isinstance(line.amount, int) for line in preview.lines)
    assert isinstance(preview.amount_due, int)
    assert preview.amount_due == credit.amount + charge.amount
    assert preview.recurring_amount == new * quantity


@SETTINGS
@given(low=amounts, high=amounts, at=moments)
def test_an_upgrade_and_its_reverse_at_the_same_instant_net_to_exactly_zero(
    low: int, high: int, at: datetime
) -> None:
    """Each line is rounded on its own, so the two changes' lines cancel to the cent."""
    if low == high:
        return
    first, second = price(low, "Low"), price(high, "High")
    there = preview_change(subscription(first), price=second, at=at)
    back = preview_change(subscription(second), price=first, at=at)
    assert there.amount_due + back.amount_due == 0


@SETTINGS
@given(old=amounts, new=amounts, quantity=quantities)
def test_a_change_at_the_periods_first_instant_charges_the_full_difference(
    old: int, new: int, quantity: int
) -> None:
    if old == new:
        return
    preview = preview_change(
        subscription(price(old, "Old"), quantity), price=price(new, "New"), at=START
    )
    assert preview.amount_due == (new - old) * quantity
    assert preview.takes_effect == "now" and preview.next_renewal_at == END


@SETTINGS
@given(old=amounts, new=amounts)
def test_a_change_at_the_periods_last_second_charges_nearly_nothing(old: int, new: int) -> None:
    """One second of 2,592,000 is left: less than one cent per 25,920 dollars of difference."""
    if old == new:
        return
    at = END - timedelta(seconds=1)
    preview = preview_change(subscription(price(old, "Old")), price=price(new, "New"), at=at)
    assert abs(preview.amount_due) <= max(old, new) // PERIOD + 1
    at_end = preview_change(subscription(price(old, "Old")), price=price(new, "New"), at=END)
    assert at_end.amount_due == 0


@SETTINGS
@given(unit=amounts, before=quantities, after=quantities, factor=st.integers(1, 20), at=moments)
def test_quantity_changes_scale_linearly(
    unit: int, before: int, after: int, factor: int, at: datetime
) -> None:
    """k times the seats is k times the exact charge; rounding down costs under 1 cent a line."""
    if before == after:
        return
    plan = price(unit, "Seats")
    one = preview_change(subscription(plan, before), quantity=after, at=at)
    many = preview_change(subscription(plan, before * factor), quantity=after * factor, at=at)
    exact = exact_share(unit * (after - before), at)
    assert exact - 1 < one.amount_due < exact + 1
    assert factor * exact - 1 < many.amount_due < factor * exact + 1
    assert many.recurring_amount == factor * one.recurring_amount


def test_mid_period_upgrade_in_cents_as_the_docs_work_it_out() -> None:
    """The worked example of docs/integration.md: $29 to $99 with 12 days 6 hours left of 30 days.

    Seconds left 1,058,400 of 2,592,000. Unused: 2900 × 1058400 / 2592000 = 1184.16 -> 1184.
    Remaining: 9900 × 1058400 / 2592000 = 4042.5 -> 4042. Due today: 4042 - 1184 = 2858.
    """
    at = END - timedelta(days=12, hours=6)
    preview = preview_change(subscription(price(2900, "Pro")), price=price(9900, "Team"), at=at)
    assert [(line.kind, line.name, line.amount) for line in preview.lines] == [
        ("unused", "Cloud Pro", -1184),
        ("remaining", "Cloud Team", 4042),
    ]
    assert preview.amount_due == 2858
    assert (preview.direction, preview.recurring_amount, preview.current_amount) == (
        "upgrade",
        9900,
        2900,
    )


def test_mid_period_seat_change_in_cents() -> None:
    """From 3 to 5 seats of $12 with 10 days left of 30: credit 3600 × 1/3 = 1200, charge
    6000 × 1/3 = 2000, due 800."""
    plan = price(1200, "Seats")
    preview = preview_change(subscription(plan, 3), quantity=5, at=END - timedelta(days=10))
    assert [line.amount for line in preview.lines] == [-1200, 2000]
    assert preview.amount_due == 800 and preview.recurring_amount == 6000


def test_a_downgrade_waits_for_the_period_end_when_the_business_says_so() -> None:
    at = START + timedelta(days=5)
    preview = preview_change(
        subscription(price(9900, "Team"), downgrades_at="period_end"),
        price=price(2900, "Pro"),
        at=at,
    )
    assert (preview.direction, preview.takes_effect, preview.effective_at) == (
        "downgrade",
        "period_end",
        END,
    )
    assert preview.amount_due == 0 and preview.lines == ()
    assert preview.recurring_amount == 2900


def test_no_proration_changes_now_and_charges_nothing() -> None:
    preview = preview_change(
        subscription(price(2900, "Pro"), proration="none"),
        price=price(9900, "Team"),
        at=START + timedelta(days=3),
    )
    assert isinstance(preview, ChangePreview)
    assert (preview.takes_effect, preview.amount_due, preview.lines) == ("now", 0, ())


@pytest.mark.parametrize(
    ("change", "switch", "code"),
    [
        ({"price": "other"}, {"plan_changes": False}, "plan_changes_off"),
        ({"quantity": 2}, {"quantity_changes": False}, "quantity_changes_off"),
        ({"price": "euro"}, {}, "currency_mismatch"),
        ({"price": "yearly"}, {}, "interval_mismatch"),
        ({"quantity": 0}, {}, "too_small"),
        ({}, {}, "no_change"),
    ],
)
def test_changes_the_business_or_the_terms_do_not_allow_are_refused(
    change: dict[str, object], switch: dict[str, object], code: str
) -> None:
    targets = {
        "other": price(9900, "Team"),
        "euro": price(9900, "Euro", currency="EUR"),
        "yearly": price(9900, "Yearly", interval="year"),
    }
    arguments = {key: targets.get(str(value), value) for key, value in change.items()}
    with pytest.raises(ValidationError) as caught:
        preview_change(subscription(price(2900, "Pro"), **switch), at=START, **arguments)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_seat_limits_bound_the_quantity() -> None:
    plan = price(1200, "Seats", seats_minimum=3, seats_maximum=9, seats_step=3)
    assert preview_change(subscription(plan, 3), quantity=6, at=START).recurring_amount == 7200
    for refused in (4, 12, 1):
        with pytest.raises(ValidationError) as caught:
            preview_change(subscription(plan, 3), quantity=refused, at=START)
        assert caught.value.code == "quantity_not_allowed"


def test_a_moment_outside_the_period_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        preview_change(
            subscription(price(2900, "Pro")), price=price(9900, "Team"), at=END + timedelta(1)
        )
    assert caught.value.code == "outside_period"


def test_a_preview_computed_again_at_its_moment_equals_it_and_a_later_one_does_not() -> None:
    """What a confirmation relies on: previews compare by value, the moment included."""
    current, team = subscription(price(2900, "Pro")), price(9900, "Team")
    at = START + timedelta(days=7)
    accepted = preview_change(current, price=team, at=at)
    assert preview_change(current, price=team, at=accepted.at) == accepted
    later = preview_change(current, price=team, at=at + timedelta(hours=6))
    assert later != accepted and later.amount_due < accepted.amount_due
