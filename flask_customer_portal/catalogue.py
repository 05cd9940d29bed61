"""The merchant's catalogue through the data API: products, prices, allowed switches, add-ons.

Everything is per business and mode, like customers. A price's terms (amount,
currency, interval, seat limits) never change once created, so what a
subscriber was sold stays what they pay: archive a price and create another.
Archived products and prices are no longer offered; subscriptions on them go
on. Who commits: every writer here commits its change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import validation as v
from .config import config_value
from .errors import ValidationError
from .models import (
    INTERVALS,
    MODES,
    Business,
    Customer,
    Price,
    PriceSwitch,
    Product,
    Subscription,
)
from .proration import check_quantity
from .proxies import portal, unit_of_work
from .records import claiming, get_price, get_product, merchant_fields

#: A price's terms: fixed at creation.
_TERMS = (
    "amount",
    "currency",
    "interval",
    "interval_count",
    "add_on",
    *(f"seats_{limit}" for limit in ("minimum", "maximum", "step")),
)


def create_product(
    business: Business,
    name: str,
    *,
    mode: str | None = None,
    external_id: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
) -> Product:
    """Create a product of ``business`` in ``mode`` (the default mode if omitted); commit it.

    :param name: unique among the business's products in that mode (``name_taken``).
    :param external_id: your id for it, unique in its business and mode.
    """
    scope = {
        "business_id": business.id,
        "mode": v.choice("mode", mode or config_value("DEFAULT_MODE"), MODES),
    }
    fields = {"name": v.required_text("name", name, max_length=200)}
    labels = merchant_fields(external_id, metadata)
    _check_name_free(Product, scope, fields["name"])
    with (
        claiming(Product, scope, labels["external_id"]),
        _name_claimed(lambda: _check_name_free(Product, scope, fields["name"])),
        unit_of_work() as session,
    ):
        product = Product(**scope, **fields, **labels, active=True)
        session.add(product)
    return product


def update_product(
    product: Product, *, name: str | None = None, active: bool | None = None
) -> Product:
    """Rename a product, or archive (``active=False``) or restore it; commit."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = v.required_text("name", name, max_length=200)
        if changes["name"] != product.name:
            _check_name_free(Product, _scope(product), changes["name"])
    if active is not None:
        changes["active"] = v.boolean("active", active)
    scope = _scope(product)

    def check_free() -> None:
        if "name" in changes:
            _check_name_free(Product, scope, changes["name"])

    with _name_claimed(check_free), unit_of_work():
        for key, value in changes.items():
            setattr(product, key, value)
    return product


def archive_product(product: Product) -> Product:
    """Stop offering ``product`` and its prices; its subscriptions go on. Commit."""
    return update_product(product, active=False)


def upsert_product(
    business: Business,
    external_id: str,
    name: str,
    *,
    mode: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
) -> Product:
    """Create the product with this external id, or rename the one there is; commit.

    For set-up code that runs at every start: running it again changes only the name.
    """
    mode = v.choice("mode", mode or config_value("DEFAULT_MODE"), MODES)
    key = v.external_id("external_id", external_id, required=True)
    existing = get_product(business, mode=mode, external_id=key)
    if existing is None:
        return create_product(business, name, mode=mode, external_id=key, metadata=metadata)
    return update_product(existing, name=name)


def create_price(
    product: Product,
    *,
    amount: int,
    currency: str,
    interval: str = "month",
    interval_count: int = 1,
    name: str | None = None,
    add_on: bool = False,
    seats_minimum: int | None = None,
    seats_maximum: int | None = None,
    seats_step: int | None = None,
    external_id: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
) -> Price:
    """Create a price of ``product``; commit it.

    :param amount: of one unit for one period, in minor units (0 for a free plan).
    :param name: the plan's name beside the product's (``Pro``); unique per product.
    :param add_on: an add-on attached to subscriptions beside their plan, not a plan.
    :param seats_minimum: makes the price seat-based: the quantity is at least
        this, grows by ``seats_step`` (1 if omitted) and is at most
        ``seats_maximum`` (no limit if omitted).
    :param external_id: your id for it, unique in its business and mode.
    """
    fields = _price_terms(
        amount=amount,
        currency=currency,
        interval=interval,
        interval_count=interval_count,
        add_on=add_on,
        seats=(seats_minimum, seats_maximum, seats_step),
    )
    fields["name"] = v.text("name", name, max_length=200, required=False) or ""
    labels = merchant_fields(external_id, metadata)
    _check_price_name_free(product, fields["name"])
    scope = _scope(product)
    with (
        claiming(Price, scope, labels["external_id"]),
        _name_claimed(lambda: _check_price_name_free(product, fields["name"])),
        unit_of_work() as session,
    ):
        price = Price(product_id=product.id, **scope, **fields, **labels, active=True)
        session.add(price)
    return price


def update_price(price: Price, *, name: str | None = None, active: bool | None = None) -> Price:
    """Rename a price, or archive (``active=False``) or restore it; commit. Its terms stay."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = v.text("name", name, max_length=200, required=False) or ""
        _check_price_name_free(price.product, changes["name"], other_than=price)
    if active is not None:
        changes["active"] = v.boolean("active", active)

    def check_free() -> None:
        if "name" in changes:
            _check_price_name_free(price.product, changes["name"], other_than=price)

    with _name_claimed(check_free), unit_of_work():
        for key, value in changes.items():
            setattr(price, key, value)
    return price


def archive_price(price: Price) -> Price:
    """Stop offering ``price``; subscriptions on it go on. Commit."""
    return update_price(price, active=False)


def upsert_price(product: Product, external_id: str, **terms: Any) -> Price:
    """Create the price of ``product`` with this external id, or return the one there is.

    ``terms`` are :func:`create_price`'s. An existing price keeps its terms: one
    given with other terms is refused (``terms_changed``; archive it and create
    a price with a new external id), so set-up code can run again safely.
    """
    key = v.external_id("external_id", external_id, required=True)
    existing = get_price(_business_of(product), mode=product.mode, external_id=key)
    if existing is None:
        return create_price(product, external_id=key, **terms)
    wanted = _price_terms(
        amount=terms.get("amount"),
        currency=terms.get("currency"),
        interval=terms.get("interval", "month"),
        interval_count=terms.get("interval_count", 1),
        add_on=terms.get("add_on", False),
        seats=tuple(terms.get(f"seats_{limit}") for limit in ("minimum", "maximum", "step")),
    )
    changed = [term for term in _TERMS if getattr(existing, term) != wanted[term]]
    if existing.product_id != product.id or changed:
        raise ValidationError(
            changed[0] if changed else "product",
            "terms_changed",
            "differs from the existing price with this external id; a price's terms never "
            "change: archive it and create another with a new external id",
        )
    if "name" in terms:
        update_price(existing, name=terms["name"])
    return existing


def allow_switch(from_price: Price, to_price: Price, *, both_ways: bool = False) -> None:
    """Let subscriptions on ``from_price`` switch to ``to_price`` (and back if ``both_ways``).

    Both must be plans (not add-ons) of one business and mode, in one currency,
    billed at the same interval: the period and the renewal date never move
    on a switch. Allowing a switch twice changes nothing. Commits.
    """
    _check_pair(from_price, to_price)
    pairs = [(from_price.id, to_price.id)] + ([(to_price.id, from_price.id)] if both_ways else [])
    with unit_of_work() as session:
        for pair in pairs:
            if session.get(PriceSwitch, pair) is None:
                session.add(PriceSwitch(from_price_id=pair[0], to_price_id=pair[1]))


def forbid_switch(from_price: Price, to_price: Price) -> None:
    """Stop offering the switch from ``from_price`` to ``to_price``; commit."""
    with unit_of_work() as session:
        switch = session.get(PriceSwitch, (from_price.id, to_price.id))
        if switch is not None:
            session.delete(switch)


def switch_options(subscription: Subscription) -> list[Price]:
    """Return the prices ``subscription`` may switch to now, cheapest first.

    None unless its business has ``plan_changes`` on, it is active with no
    change pending, and it is on a catalogue price: then the active prices of
    active products the merchant allowed a switch to (:func:`allow_switch`).
    """
    business = subscription.customer.business
    if (
        not business.plan_changes
        or subscription.status != "active"
        or subscription.pending_at is not None
        or subscription.price_id is None
    ):
        return []
    query = (
        select(Price)
        .join(PriceSwitch, PriceSwitch.to_price_id == Price.id)
        .join(Product, Product.id == Price.product_id)
        .where(
            PriceSwitch.from_price_id == subscription.price_id,
            Price.active,
            Product.active,
            Price.currency == subscription.currency,
        )
        .order_by(Price.amount, Price.id)
    )
    return list(portal.session.scalars(query))


def add_on_options(subscription: Subscription) -> list[Price]:
    """Return the add-ons ``subscription`` may take, cheapest first (none unless ``add_ons``
    is on): active add-on prices of its business and mode in its currency and interval."""
    if not subscription.customer.business.add_ons or subscription.status != "active":
        return []
    query = (
        select(Price)
        .join(Product, Product.id == Price.product_id)
        .where(
            Price.business_id == subscription.business_id,
            Price.mode == subscription.mode,
            Price.add_on,
            Price.active,
            Product.active,
            Price.currency == subscription.currency,
            Price.interval == subscription.interval,
            Price.interval_count == subscription.interval_count,
        )
        .order_by(Price.amount, Price.id)
    )
    return list(portal.session.scalars(query))


def check_listed(price: Price, customer: Customer, quantity: int) -> None:
    """Refuse to start ``customer`` on ``price`` unless it is an offered plan of their
    business and mode and ``quantity`` is within its seat limits."""
    if (price.business_id, price.mode) != (customer.business_id, customer.mode):
        raise ValidationError("price", "not_found", "is not a price of the customer's business")
    if price.add_on:
        raise ValidationError("price", "add_on", "is an add-on, not a plan")
    if not price.active or not price.product.active:
        raise ValidationError("price", "archived", f"{price.label!r} is no longer offered")
    check_quantity("quantity", price, v.count("quantity", quantity))


def _business_of(product: Product) -> Business:
    """Return the business ``product`` belongs to."""
    business = portal.session.get(Business, product.business_id)
    assert business is not None
    return business


def _price_terms(
    *,
    amount: Any,
    currency: Any,
    interval: Any,
    interval_count: Any,
    add_on: Any,
    seats: tuple[Any, ...],
) -> dict[str, Any]:
    minimum, maximum, step = seats
    if minimum is None and (maximum is not None or step is not None):
        raise ValidationError(
            "seats_minimum", "required", "is required with seats_maximum or seats_step"
        )
    if minimum is not None:
        minimum = v.count("seats_minimum", minimum)
        step = v.count("seats_step", 1 if step is None else step)
        if maximum is not None:
            maximum = v.count("seats_maximum", maximum, minimum=minimum)
    return {
        "amount": v.amount("amount", amount),
        "currency": v.currency("currency", currency),
        "interval": v.choice("interval", interval, INTERVALS),
        "interval_count": v.count("interval_count", interval_count),
        "add_on": v.boolean("add_on", add_on),
        "seats_minimum": minimum,
        "seats_maximum": maximum,
        "seats_step": step,
    }


def _check_pair(from_price: Price, to_price: Price) -> None:
    if from_price.id == to_price.id:
        raise ValidationError("to_price", "same_price", "is the price switched from")
    if (from_price.business_id, from_price.mode) != (to_price.business_id, to_price.mode):
        raise ValidationError("to_price", "other_business", "belongs to another business or mode")
    if from_price.add_on or to_price.add_on:
        raise ValidationError("to_price", "add_on", "switches are between plans, not add-ons")
    if from_price.currency != to_price.currency:
        raise ValidationError(
            "to_price",
            "currency_mismatch",
            f"is in {to_price.currency}, the price switched from in {from_price.currency}",
        )
    if (from_price.interval, from_price.interval_count) != (
        to_price.interval,
        to_price.interval_count,
    ):
        raise ValidationError(
            "to_price",
            "interval_mismatch",
            "bills at another interval than the price switched from",
        )


def _check_name_free(model: type[Product], scope: dict[str, Any], name: str) -> None:
    if portal.session.scalar(select(model.id).filter_by(**scope, name=name)) is not None:
        raise ValidationError("name", "name_taken", "is the name of another product")


def _named(product: Product, name: str) -> Price | None:
    return portal.session.scalar(select(Price).filter_by(product_id=product.id, name=name))


def _check_price_name_free(product: Product, name: str, *, other_than: Price | None = None) -> None:
    other = _named(product, name)
    if other is not None and other is not other_than:
        raise ValidationError("name", "name_taken", "is the name of another price of the product")


@contextmanager
def _name_claimed(check_free: Callable[[], None]) -> Iterator[None]:
    # Of two writers racing for one name, the unique constraint lets one win; the
    # other's integrity error becomes the clear refusal the look-up before would give.
    try:
        yield
    except IntegrityError:
        check_free()
        raise


def _scope(record: Product | Price) -> dict[str, Any]:
    return {"business_id": record.business_id, "mode": record.mode}
