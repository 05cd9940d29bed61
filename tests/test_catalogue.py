"""The merchant's catalogue through the data API, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_babel import force_locale
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal.businesses import SWITCHES
from flask_customer_portal.models import Business, Customer, Price, Product, SubscriptionAddOn

from .helpers import run_threads


@pytest.fixture
def cloud(business: Business) -> Product:
    return portal.create_product(business, "Acme Cloud", mode="test", external_id="prod_cloud")


@pytest.fixture
def plans(cloud: Product) -> dict[str, Price]:
    return {
        name: portal.create_price(cloud, name=name, amount=amount, currency="USD")
        for name, amount in (("Basic", 900), ("Pro", 2900), ("Team", 9900))
    }


def test_products_and_prices_are_kept_and_found_by_their_ids(
    business: Business, cloud: Product, plans: dict[str, Price]
) -> None:
    seats = portal.create_price(
        cloud,
        name="Seats",
        amount=1200,
        currency="usd",
        seats_minimum=3,
        seats_maximum=30,
        external_id="price_seats",
        metadata={"tier": "b2b"},
    )
    assert portal.get_product(business, cloud.public_id, mode="test") is cloud
    assert portal.get_product(business, mode="test", external_id="prod_cloud") is cloud
    assert portal.get_product(business, mode="live", external_id="prod_cloud") is None
    found = portal.get_price(business, mode="test", external_id="price_seats")
    assert found is seats and found.currency == "USD" and found.metadata_ == {"tier": "b2b"}
    assert (found.seats_minimum, found.seats_maximum, found.seats_step) == (3, 30, 1)
    assert [price.name for price in cloud.prices] == ["Basic", "Pro", "Team", "Seats"]
    assert plans["Pro"].label == "Acme Cloud Pro"
    portal.update_metadata(seats, {"tier": None, "plan": "b2b"})
    portal.set_external_id(cloud, "prod_cloud_v2")
    assert seats.metadata_ == {"plan": "b2b"}
    assert portal.get_product(business, mode="test", external_id="prod_cloud_v2") is cloud
    with pytest.raises(portal.ValidationError) as caught:
        portal.set_external_id(plans["Pro"], "price_seats")
    assert caught.value.code == "external_id_taken"


def test_upserts_by_external_id_let_set_up_code_run_again(business: Business) -> None:
    first = portal.upsert_product(business, "prod_x", "Storage", mode="test")
    again = portal.upsert_product(business, "prod_x", "Storage+", mode="test")
    assert again.id == first.id and again.name == "Storage+"
    price = portal.upsert_price(first, "price_x", amount=500, currency="USD", name="10 GB")
    assert portal.upsert_price(first, "price_x", amount=500, currency="USD").id == price.id
    with pytest.raises(portal.ValidationError) as caught:
        portal.upsert_price(first, "price_x", amount=700, currency="USD")
    assert (caught.value.field, caught.value.code) == ("amount", "terms_changed")
    assert price.amount == 500


@pytest.mark.parametrize(
    ("terms", "field", "code"),
    [
        ({"amount": -1}, "amount", "negative"),
        ({"amount": 9.99}, "amount", "not_minor_units"),
        ({"currency": "XXXX"}, "currency", "invalid_currency"),
        ({"interval": "fortnight"}, "interval", "invalid_choice"),
        ({"seats_minimum": 0}, "seats_minimum", "too_small"),
        ({"seats_minimum": 5, "seats_maximum": 2}, "seats_maximum", "too_small"),
        ({"seats_maximum": 10}, "seats_minimum", "required"),
        ({"name": "Pro"}, "name", "name_taken"),
    ],
)
def test_malformed_prices_are_refused_and_nothing_is_written(
    session: Session, cloud: Product, plans: dict[str, Price], terms: dict, field: str, code: str
) -> None:
    """D1: bad amounts, currencies, intervals and seat limits never reach the table."""
    arguments = {"amount": 1000, "currency": "USD", "name": "New"} | terms
    with pytest.raises(portal.ValidationError) as caught:
        portal.create_price(cloud, **arguments)
    assert (caught.value.field, caught.value.code) == (field, code)
    assert session.scalar(sa.select(sa.func.count()).select_from(Price)) == 3


def test_the_database_refuses_what_the_api_would(session: Session, plans: dict[str, Price]) -> None:
    """D1: the checks hold for code that writes rows itself."""
    for column, value in (("amount", -5), ("seats_maximum", 2), ("interval", "hour")):
        with pytest.raises(sa.exc.IntegrityError):
            session.execute(
                sa.update(Price).where(Price.id == plans["Pro"].id).values({column: value})
            )
            session.flush()
        session.rollback()


def test_the_same_product_name_twice_in_a_mode_is_refused(
    business: Business, cloud: Product
) -> None:
    with pytest.raises(portal.ValidationError) as caught:
        portal.create_product(business, "Acme Cloud", mode="test")
    assert caught.value.code == "name_taken"
    assert portal.create_product(business, "Acme Cloud", mode="live").mode == "live"


@pytest.mark.postgresql_only
def test_writers_racing_for_one_name_end_with_one_and_clear_refusals(
    app: Flask, session: Session, business: Business, cloud: Product
) -> None:
    """D1: eight workers creating one new product name, and eight one price name, at once:
    one of each is written, the others are refused with name_taken (not a database error)."""
    business_id, cloud_id = business.id, cloud.id
    made: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(16)

    def create(kind: str) -> None:
        with app.app_context():
            own = app.extensions["customer_portal"].session
            barrier.wait()
            try:
                if kind == "product":
                    portal.create_product(own.get(Business, business_id), "Acme Mail", mode="test")
                else:
                    product = own.get(Product, cloud_id)
                    portal.create_price(product, name="Team", amount=9900, currency="USD")
                made.append(kind)
            except portal.ValidationError as error:
                refused.append(f"{kind}:{error.field}:{error.code}")

    kinds = ["product", "price"] * 8
    run_threads(lambda: create(kinds.pop()), 16)
    assert sorted(made) == ["price", "product"]
    assert sorted(refused) == ["price:name:name_taken"] * 7 + ["product:name:name_taken"] * 7
    assert session.scalar(sa.select(sa.func.count()).where(Product.name == "Acme Mail")) == 1
    assert session.scalar(sa.select(sa.func.count()).where(Price.name == "Team")) == 1


def test_every_switch_is_off_for_a_new_business_and_turns_on(business: Business) -> None:
    assert [getattr(business, switch) for switch in SWITCHES] == [False] * len(SWITCHES)
    assert (business.downgrades_at, business.proration) == ("period_end", "none")
    portal.update_business(business, plan_changes=True, downgrades_at="now", proration="prorate")
    assert (business.plan_changes, business.downgrades_at, business.proration) == (
        True,
        "now",
        "prorate",
    )
    for changes, code in (
        ({"downgrades_at": "later"}, "invalid_choice"),
        ({"proration": "always"}, "invalid_choice"),
        ({"pause": "yes"}, "not_boolean"),
    ):
        with pytest.raises(portal.ValidationError) as caught:
            portal.update_business(business, **changes)
        assert caught.value.code == code
    assert business.pause is False


def test_switches_must_stay_in_one_currency_and_interval(
    cloud: Product, plans: dict[str, Price]
) -> None:
    euro = portal.create_price(cloud, name="Pro EUR", amount=2700, currency="EUR")
    yearly = portal.create_price(
        cloud, name="Pro yearly", amount=29000, currency="USD", interval="year"
    )
    storage = portal.create_price(cloud, name="Storage", amount=500, currency="USD", add_on=True)
    for target, code in (
        (euro, "currency_mismatch"),
        (yearly, "interval_mismatch"),
        (storage, "add_on"),
        (plans["Pro"], "same_price"),
    ):
        with pytest.raises(portal.ValidationError) as caught:
            portal.allow_switch(plans["Pro"], target)
        assert caught.value.code == code


def test_switch_options_honour_the_switch_and_the_paths(
    business: Business, customer: Customer, cloud: Product, plans: dict[str, Price]
) -> None:
    subscription = portal.start_subscription(customer, price=plans["Pro"])
    assert (subscription.product, subscription.plan, subscription.price_amount) == (
        "Acme Cloud",
        "Pro",
        2900,
    )
    assert subscription.price_id == plans["Pro"].id
    portal.allow_switch(plans["Pro"], plans["Team"], both_ways=True)
    portal.allow_switch(plans["Pro"], plans["Team"])
    assert portal.switch_options(subscription) == []  # plan_changes is off
    portal.update_business(business, plan_changes=True)
    assert portal.switch_options(subscription) == [plans["Team"]]
    portal.allow_switch(plans["Pro"], plans["Basic"])
    assert portal.switch_options(subscription) == [plans["Basic"], plans["Team"]]
    portal.archive_price(plans["Basic"])
    portal.forbid_switch(plans["Pro"], plans["Team"])
    assert portal.switch_options(subscription) == []
    by_hand = portal.start_subscription(customer, product="Cloud", price=2900, currency="USD")
    assert by_hand.price_id is None and portal.switch_options(by_hand) == []


def test_starting_on_a_price_keeps_to_its_seat_limits(
    business: Business, customer: Customer, cloud: Product
) -> None:
    seats = portal.create_price(
        cloud, name="Seats", amount=1200, currency="USD", seats_minimum=5, seats_step=5
    )
    assert portal.start_subscription(customer, price=seats, quantity=10).amount == 12000
    storage = portal.create_price(cloud, name="Storage", amount=500, currency="USD", add_on=True)
    other = portal.create_business("Other")
    stranger = portal.create_price(
        portal.create_product(other, "Else", mode="test"), amount=100, currency="USD"
    )
    for price, quantity, code in (
        (seats, 7, "quantity_not_allowed"),
        (seats, 1, "quantity_not_allowed"),
        (storage, 1, "add_on"),
        (stranger, 1, "not_found"),
    ):
        with pytest.raises(portal.ValidationError) as caught:
            portal.start_subscription(customer, price=price, quantity=quantity)
        assert caught.value.code == code
    assert len(portal.list_subscriptions(customer)) == 1


def test_a_preview_with_add_ons_prorates_each_item(
    session: Session,
    business: Business,
    customer: Customer,
    cloud: Product,
    plans: dict[str, Price],
) -> None:
    storage = portal.create_price(cloud, name="Storage", amount=600, currency="USD", add_on=True)
    support = portal.create_price(cloud, name="Support", amount=3000, currency="USD", add_on=True)
    subscription = portal.start_subscription(customer, price=plans["Pro"])
    session.add(SubscriptionAddOn(subscription_id=subscription.id, price_id=storage.id, quantity=1))
    session.commit()
    session.refresh(subscription)
    assert portal.add_on_options(subscription) == []
    portal.update_business(business, add_ons=True, proration="prorate")
    assert portal.add_on_options(subscription) == [storage, support]
    # A third of the period left: storage 1 -> 3 credits 200 and charges 600; support adds 1000.
    start, end = subscription.current_period_start, subscription.current_period_end
    at = end - (end - start) / 3
    preview = portal.preview_change(subscription, add_ons={storage: 3, support: 1}, at=at)
    assert sorted((line.name, line.quantity, line.amount) for line in preview.lines) == [
        ("Acme Cloud Storage", 1, -200),
        ("Acme Cloud Storage", 3, 600),
        ("Acme Cloud Support", 1, 1000),
    ]
    assert preview.amount_due == 1400
    assert preview.recurring_amount == 2900 + 1800 + 3000
    removed = portal.preview_change(subscription, add_ons={storage: 0}, at=at)
    assert removed.add_ons == () and removed.direction == "downgrade"
    assert removed.takes_effect == "period_end"
    assert subscription.current_period_end - at > timedelta(days=9)


def test_proration_lines_are_described_in_the_customers_language(
    business: Business, customer: Customer, plans: dict[str, Price]
) -> None:
    portal.update_business(business, plan_changes=True, proration="prorate")
    subscription = portal.start_subscription(customer, price=plans["Pro"], quantity=2)
    preview = portal.preview_change(
        subscription, price=plans["Team"], at=subscription.current_period_start
    )
    assert [line.description for line in preview.lines] == [
        "Unused time on Acme Cloud Pro × 2",
        "Remaining time on Acme Cloud Team × 2",
    ]
    with force_locale("pt_BR"):
        assert preview.lines[0].description == "Tempo não usado de Acme Cloud Pro × 2"


def test_a_plan_changed_by_hand_is_on_no_catalogue_price(
    business: Business, customer: Customer, plans: dict[str, Price]
) -> None:
    """Switches are offered from a price only while the subscription pays that price."""
    portal.update_business(business, plan_changes=True)
    portal.allow_switch(plans["Pro"], plans["Team"])
    subscription = portal.start_subscription(customer, price=plans["Pro"])
    portal.change_quantity(subscription, 2)
    assert portal.switch_options(subscription) == [plans["Team"]]
    portal.change_plan(subscription, plan="Pro", price=3500)
    assert subscription.price_id is None and portal.switch_options(subscription) == []
