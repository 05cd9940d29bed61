"""The billing records: what the merchant's code feeds the portal through the data API."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

if TYPE_CHECKING:
    from .catalogue import Price, SubscriptionAddOn

from ..db import (
    INTERVALS,
    Base,
    UTCDateTime,
    created_at_column,
    currency_check,
    external_id_column,
    metadata_column,
    one_of,
    public_id_column,
    scope_constraints,
    updated_at_column,
)

SUBSCRIPTION_STATUSES = ("pending", "active", "on_hold", "cancelled", "expired", "failed")
#: The statuses of a subscription that has not ended: shown as current, still changeable.
CURRENT_STATUSES = ("active", "on_hold", "pending")
#: The ORDER BY of a list of records.
Order = tuple[ColumnElement[Any], ...]
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
PAYMENT_STATUSES = ("pending", "requires_action", "succeeded", "failed")
#: The statuses of a payment whose outcome is not final yet.
IN_FLIGHT = ("pending", "requires_action")
REFUND_STATUSES = ("pending", "succeeded", "failed")
#: When a customer's downgrade takes effect; whether a change mid-period is prorated.
DOWNGRADE_TIMINGS = ("now", "period_end")
PRORATIONS = ("prorate", "none")


class Business(Base):
    """A merchant's business: the owner of customers, invoices and the portal's branding."""

    __tablename__ = "portal_businesses"
    __table_args__ = (
        CheckConstraint("length(name) > 0", name="name"),
        CheckConstraint(
            "brand_color IS NULL OR (length(brand_color) = 7 AND substr(brand_color, 1, 1) = '#')",
            name="brand_color",
        ),
        CheckConstraint(
            "invoice_counter_live >= 0 AND invoice_counter_test >= 0", name="invoice_counters"
        ),
        CheckConstraint("cancel_at_period_end OR cancel_now", name="cancel_options"),
        CheckConstraint(one_of("downgrades_at", DOWNGRADE_TIMINGS), name="downgrades_at"),
        CheckConstraint(one_of("proration", PRORATIONS), name="proration"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("biz")
    name: Mapped[str] = mapped_column(String(200))
    support_email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(Text)
    tax_id: Mapped[str | None] = mapped_column(String(64))
    # Loaded only when read (its page, an invoice PDF): pages ask has_logo.
    logo: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    brand_color: Mapped[str | None] = mapped_column(String(7))
    default_locale: Mapped[str] = mapped_column(String(16), default="en")
    invoice_prefix: Mapped[str] = mapped_column(String(12))
    # The last invoice number used in each mode: test invoices never leave gaps
    # in the live sequence.
    invoice_counter_live: Mapped[int] = mapped_column(Integer, default=0)
    invoice_counter_test: Mapped[int] = mapped_column(Integer, default=0)
    # Which ways of cancelling the portal offers (at least one).
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=True)
    cancel_now: Mapped[bool] = mapped_column(Boolean, default=True)
    # What customers may change by themselves (see SWITCHES), and how.
    plan_changes: Mapped[bool] = mapped_column(Boolean, default=False)
    quantity_changes: Mapped[bool] = mapped_column(Boolean, default=False)
    add_ons: Mapped[bool] = mapped_column(Boolean, default=False)
    pause: Mapped[bool] = mapped_column(Boolean, default=False)
    cancellation_reasons: Mapped[bool] = mapped_column(Boolean, default=False)
    retention_offer: Mapped[bool] = mapped_column(Boolean, default=False)
    downgrades_at: Mapped[str] = mapped_column(String(10), default="period_end")
    proration: Mapped[str] = mapped_column(String(7), default="none")
    created_at: Mapped[datetime] = created_at_column()

    #: Whether the business has a logo, without loading it.
    has_logo: Mapped[bool] = column_property(logo.is_not(None))

    def snapshot(self) -> dict[str, Any]:
        """Return the details printed on an invoice, frozen at issue time."""
        return {
            "public_id": self.public_id,
            "name": self.name,
            "support_email": self.support_email,
            "address": self.address,
            "tax_id": self.tax_id,
        }


class Customer(Base):
    """An end customer of one business in one mode. Emails are stored lower-cased."""

    __tablename__ = "portal_customers"
    __table_args__ = (
        UniqueConstraint("business_id", "mode", "email"),
        *scope_constraints(),
        CheckConstraint("email = lower(email) AND email LIKE '%_@_%'", name="email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("cus")
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(20))
    locale: Mapped[str | None] = mapped_column(String(16))
    external_id: Mapped[str | None] = external_id_column()
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    business: Mapped[Business] = relationship(lazy="joined", innerjoin=True)
    # Read-only views of the customer's records, each loaded when first read
    # (pages that never read them run no statement for them), in the order of
    # the data API's list calls. Changes go through the data API.
    subscriptions: Mapped[list[Subscription]] = relationship(
        viewonly=True, lazy="select", order_by=lambda: SUBSCRIPTION_ORDER
    )
    invoices: Mapped[list[Invoice]] = relationship(
        viewonly=True, lazy="select", order_by=lambda: INVOICE_ORDER
    )
    payment_methods: Mapped[list[PaymentMethod]] = relationship(
        viewonly=True, lazy="select", order_by=lambda: PAYMENT_METHOD_ORDER
    )

    @property
    def scope(self) -> dict[str, Any]:
        """The business and mode a record of this customer belongs to, as column values."""
        return {"business_id": self.business_id, "mode": self.mode}

    def snapshot(self) -> dict[str, Any]:
        """Return the details printed on an invoice, frozen at issue time."""
        return {
            "public_id": self.public_id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
        }


class Subscription(Base):
    """A recurring plan. Its status changes only through :func:`~.subscriptions.transition`."""

    __tablename__ = "portal_subscriptions"
    __table_args__ = (
        CheckConstraint(one_of("status", SUBSCRIPTION_STATUSES), name="status"),
        CheckConstraint(one_of("interval", INTERVALS), name="interval"),
        CheckConstraint("interval_count >= 1", name="interval_count"),
        CheckConstraint("quantity >= 1", name="quantity"),
        CheckConstraint("price_amount >= 0", name="price_amount"),
        CheckConstraint("current_period_end > current_period_start", name="period"),
        CheckConstraint("length(product) > 0", name="product"),
        CheckConstraint("pending_quantity >= 1", name="pending_quantity"),
        CheckConstraint(
            "(pending_at IS NULL) = (pending_price_id IS NULL AND pending_quantity IS NULL)",
            name="pending_change",
        ),
        currency_check(),
        *scope_constraints(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("sub")
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"), index=True)
    # The customer's business and mode, kept here for the external id's scope.
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"))
    mode: Mapped[str] = mapped_column(String(4))
    external_id: Mapped[str | None] = external_id_column()
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    product: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(200))
    price_amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(5))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(10))
    current_period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    next_billing_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Why the customer cancelled, when their business asks (a code of its list of
    # reasons), and what they added in their own words: plain text, never shown unescaped.
    cancellation_reason: Mapped[str | None] = mapped_column(String(40))
    cancellation_comment: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
    # The saved card renewals are charged to; None until the customer picks one.
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("portal_payment_methods.id"))
    # The catalogue price it is on (None: terms given by hand), and a change
    # scheduled for pending_at (a downgrade at period end): price, quantity or both.
    price_id: Mapped[int | None] = mapped_column(ForeignKey("portal_prices.id"))
    pending_price_id: Mapped[int | None] = mapped_column(ForeignKey("portal_prices.id"))
    pending_quantity: Mapped[int | None] = mapped_column(Integer)
    pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    customer: Mapped[Customer] = relationship()
    payment_method: Mapped[PaymentMethod | None] = relationship()
    price: Mapped[Price | None] = relationship(foreign_keys=[price_id])
    pending_price: Mapped[Price | None] = relationship(foreign_keys=[pending_price_id])
    add_ons: Mapped[list[SubscriptionAddOn]] = relationship(
        viewonly=True, order_by="SubscriptionAddOn.id"
    )

    @property
    def amount(self) -> int:
        """What one period of the plan costs, in minor units (add-ons apart)."""
        return self.price_amount * self.quantity

    @property
    def name(self) -> str:
        """What the customer calls it: the product and the plan (``Acme Cloud Pro``)."""
        return " ".join(filter(None, (self.product, self.plan)))


#: The order a customer's subscriptions are listed in: the newest first.
SUBSCRIPTION_ORDER: Order = (Subscription.created_at.desc(), Subscription.id.desc())


class Invoice(Base):
    """An invoice with its lines; its number is unique within its business."""

    __tablename__ = "portal_invoices"
    __table_args__ = (
        UniqueConstraint("business_id", "number"),
        CheckConstraint(one_of("status", INVOICE_STATUSES), name="status"),
        CheckConstraint("subtotal >= 0 AND tax >= 0", name="amounts"),
        CheckConstraint("total = subtotal + tax", name="total"),
        CheckConstraint("status <> 'paid' OR paid_at IS NOT NULL", name="paid_at"),
        currency_check(),
        *scope_constraints(),
        # The billing history reads a customer's invoices newest first.
        Index("ix_portal_invoices_history", "customer_id", "issued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("in")
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"))
    mode: Mapped[str] = mapped_column(String(4))
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"))
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("portal_subscriptions.id"), index=True
    )
    external_id: Mapped[str | None] = external_id_column()
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    number: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(13))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(Integer)
    tax: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    business_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    customer_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_at_column()

    customer: Mapped[Customer] = relationship()
    subscription: Mapped[Subscription | None] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )


#: The order a customer's invoices are listed in: the newest issued first.
INVOICE_ORDER: Order = (Invoice.issued_at.desc(), Invoice.id.desc())


class InvoiceLine(Base):
    """One line of an invoice: ``quantity`` times ``unit_amount``."""

    __tablename__ = "portal_invoice_lines"
    __table_args__ = (
        UniqueConstraint("invoice_id", "position"),
        CheckConstraint("quantity >= 1", name="quantity"),
        CheckConstraint("unit_amount >= 0", name="unit_amount"),
        CheckConstraint("amount = quantity * unit_amount", name="amount"),
        CheckConstraint("length(description) > 0", name="description"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("portal_invoices.id"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_amount: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)


class PaymentMethod(Base):
    """A saved payment method: the provider's token and what a customer recognises it by.

    There is deliberately no column that could hold a card number.
    """

    __tablename__ = "portal_payment_methods"
    __table_args__ = (
        UniqueConstraint("customer_id", "provider_token"),
        CheckConstraint("length(last4) = 4", name="last4"),
        CheckConstraint("exp_month BETWEEN 1 AND 12", name="exp_month"),
        CheckConstraint("exp_year BETWEEN 2000 AND 2999", name="exp_year"),
        Index(
            "ix_portal_payment_methods_one_default",
            "customer_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("pm")
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"), index=True)
    provider_token: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()

    customer: Mapped[Customer] = relationship()


#: The order a customer's saved cards are listed in: the default first, then the newest.
PAYMENT_METHOD_ORDER: Order = (
    PaymentMethod.is_default.desc(),
    PaymentMethod.created_at.desc(),
    PaymentMethod.id.desc(),
)


class Payment(Base):
    """A charge, successful or not, with the provider's reference and our idempotency key."""

    __tablename__ = "portal_payments"
    __table_args__ = (
        CheckConstraint(one_of("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount"),
        currency_check(),
        *scope_constraints(),
        Index("ix_portal_payments_history", "customer_id", "created_at"),
        *(  # P2: one payment in flight per subscription, and per invoice, whatever races.
            Index(name, column, unique=True, sqlite_where=where, postgresql_where=where)
            for name, column in (
                ("ix_portal_payments_one_open_attempt", "subscription_id"),
                ("ix_portal_payments_one_open_invoice_attempt", "invoice_id"),
            )
            for where in [text(one_of("status", IN_FLIGHT))]
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("py")
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"))
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"))
    mode: Mapped[str] = mapped_column(String(4))
    external_id: Mapped[str | None] = external_id_column()
    metadata_: Mapped[dict[str, Any]] = metadata_column()
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("portal_invoices.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("portal_subscriptions.id"))
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("portal_payment_methods.id"))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(15))
    provider_reference: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    # Where the provider wants the customer to go to finish a "requires_action" charge.
    action_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    customer: Mapped[Customer] = relationship()
    invoice: Mapped[Invoice | None] = relationship()
    # None for a payment the merchant recorded without one.
    subscription: Mapped[Subscription | None] = relationship()
    payment_method: Mapped[PaymentMethod | None] = relationship()
    refunds: Mapped[list[Refund]] = relationship(back_populates="payment")


class Refund(Base):
    """Money given back on a payment; the refunds of a payment never exceed its amount."""

    __tablename__ = "portal_refunds"
    __table_args__ = (
        CheckConstraint(one_of("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount"),
        currency_check(),
        Index("ix_portal_refunds_history", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("re")
    payment_id: Mapped[int] = mapped_column(ForeignKey("portal_payments.id"), index=True)
    #: The payment's customer, kept here too so that a billing history reads its
    #: refunds from their own (customer, time) index.
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(9))
    provider_reference: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()

    payment: Mapped[Payment] = relationship(back_populates="refunds")
