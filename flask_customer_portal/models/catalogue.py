"""The merchant's catalogue: products, their prices, the switches between prices, add-ons.

A price is what a subscription is on: an amount per unit for ``interval_count``
``interval``\\ s in one currency. A seat-based price limits the quantity
(``seats_minimum``, ``seats_maximum``, ``seats_step``). An add-on price is
attached to a subscription beside its plan (:class:`SubscriptionAddOn`).
Which prices a subscription may move to is the merchant's list of allowed
switches (:class:`PriceSwitch`), one row per direction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import (
    INTERVALS,
    Base,
    created_at_column,
    currency_check,
    external_id_column,
    metadata_column,
    one_of,
    public_id_column,
    scope_constraints,
    updated_at_column,
)


class Product(Base):
    """What a business sells (``Acme Cloud``), with its prices; its name is unique per mode."""

    __tablename__ = "portal_products"
    __table_args__ = (
        UniqueConstraint("business_id", "mode", "name"),
        CheckConstraint("length(name) > 0", name="name"),
        *scope_constraints(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("prod")
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(200))
    # An archived product is no longer offered; its subscriptions go on.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_id: Mapped[str | None] = external_id_column()
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    prices: Mapped[list[Price]] = relationship(
        back_populates="product", viewonly=True, order_by="Price.id"
    )


class Price(Base):
    """One price of a product; its terms never change (archive it and create another)."""

    __tablename__ = "portal_prices"
    __table_args__ = (
        UniqueConstraint("product_id", "name"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint(one_of("interval", INTERVALS), name="interval"),
        CheckConstraint("interval_count >= 1", name="interval_count"),
        CheckConstraint(
            "(seats_minimum IS NULL AND seats_maximum IS NULL AND seats_step IS NULL) OR "
            "(seats_minimum IS NOT NULL AND seats_step IS NOT NULL AND "
            "seats_minimum >= 1 AND seats_step >= 1 AND "
            "(seats_maximum IS NULL OR seats_maximum >= seats_minimum))",
            name="seats",
        ),
        currency_check(),
        *scope_constraints(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("price")
    product_id: Mapped[int] = mapped_column(ForeignKey("portal_products.id"), index=True)
    # The product's business and mode, kept here for the external id's scope.
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"))
    mode: Mapped[str] = mapped_column(String(4))
    # The plan's name a customer sees beside the product's (``Pro``); may be empty.
    name: Mapped[str] = mapped_column(String(200), default="")
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(5))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    add_on: Mapped[bool] = mapped_column(Boolean, default=False)
    # Seat limits of a seat-based price: the quantity is minimum, minimum + step, ...
    # up to maximum (None: no upper limit). All three None: any quantity of at least 1.
    seats_minimum: Mapped[int | None] = mapped_column(Integer)
    seats_maximum: Mapped[int | None] = mapped_column(Integer)
    seats_step: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_id: Mapped[str | None] = external_id_column()
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    product: Mapped[Product] = relationship(back_populates="prices", lazy="joined")

    @property
    def seat_based(self) -> bool:
        """Whether the price limits its quantity."""
        return self.seats_minimum is not None

    @property
    def label(self) -> str:
        """What the customer calls it: the product and the price's name (``Acme Cloud Pro``)."""
        return " ".join(filter(None, (self.product.name, self.name)))

    def allows_quantity(self, quantity: int) -> bool:
        """Tell whether ``quantity`` is within the price's seat limits."""
        if quantity < 1:
            return False
        if self.seats_minimum is None or self.seats_step is None:
            return True
        if quantity < self.seats_minimum:
            return False
        if self.seats_maximum is not None and quantity > self.seats_maximum:
            return False
        return (quantity - self.seats_minimum) % self.seats_step == 0


class PriceSwitch(Base):
    """An allowed move of a subscription from one price to another (one direction)."""

    __tablename__ = "portal_price_switches"
    __table_args__ = (CheckConstraint("from_price_id <> to_price_id", name="distinct"),)

    from_price_id: Mapped[int] = mapped_column(ForeignKey("portal_prices.id"), primary_key=True)
    to_price_id: Mapped[int] = mapped_column(ForeignKey("portal_prices.id"), primary_key=True)
    created_at: Mapped[datetime] = created_at_column()


class SubscriptionAddOn(Base):
    """An add-on price attached to a subscription, with its quantity."""

    __tablename__ = "portal_subscription_add_ons"
    __table_args__ = (
        UniqueConstraint("subscription_id", "price_id"),
        CheckConstraint("quantity >= 1", name="quantity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("portal_subscriptions.id"), index=True)
    price_id: Mapped[int] = mapped_column(ForeignKey("portal_prices.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_at_column()

    price: Mapped[Price] = relationship(lazy="joined")

    @property
    def amount(self) -> int:
        """What one period of the add-on costs, in minor units."""
        return self.price.amount * self.quantity
