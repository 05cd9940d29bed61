"""The merchant's data API: clear errors naming the field, nothing half-written."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import InvalidTransition, ValidationError, formatting, signals
from flask_customer_portal import models as m
from flask_customer_portal.subscriptions import ALLOWED_FROM, add_interval

from .helpers import count, record_signals, run_threads, signalled

LINE = {"description": "Acme Cloud Pro", "unit_amount": 2900}


def test_customers_are_matched_by_email_case_insensitively(
    session: Session, business: m.Business
) -> None:
    first = portal.upsert_customer(business, "  Ana@Example.COM ", name="Ana")
    again = portal.upsert_customer(business, "ana@example.com", phone="+55 11 98765-4321")
    assert first.id == again.id
    assert again.email == "ana@example.com"
    assert again.name == "Ana"
    assert again.phone == "+5511987654321"
    assert portal.find_customer(business, "ANA@example.com ", mode="test") == again
    assert portal.find_customer(business, "ana@example.com", mode="live") is None
    assert count(session, m.Customer) == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "code"),
    [
        ({"email": "not-an-email"}, "email", "invalid_email"),
        ({"email": "ana@example.com\r\nBcc: x@example.com"}, "email", "invalid_email"),
        ({"email": "ana@example.com", "mode": "prod"}, "mode", "invalid_choice"),
        ({"email": "ana@example.com", "phone": "12345"}, "phone", "no_country_code"),
        ({"email": "ana@example.com", "phone": "+55 11 1234"}, "phone", "invalid_phone"),
        ({"email": "ana@example.com", "locale": "xx_YY_ZZ"}, "locale", "invalid_locale"),
        ({"email": "ana@example.com", "name": "x" * 201}, "name", "too_long"),
        ({"email": "ana@example.com", "name": "Ana\x00"}, "name", "control_characters"),
        ({"email": "ana@example.com", "name": "4242 4242 4242 4242"}, "name", "card_number"),
    ],
)
def test_bad_customer_input_names_the_field_and_writes_nothing(
    session: Session, business: m.Business, kwargs: dict, field: str, code: str
) -> None:
    """Each error names its field and a code that never changes, for code to act on."""
    with pytest.raises(ValidationError) as error:
        portal.upsert_customer(business, **kwargs)
    assert (error.value.field, error.value.code) == (field, code)
    assert count(session, m.Customer) == 0


def test_business_input_is_checked(session: Session, business: m.Business) -> None:
    with pytest.raises(ValidationError, match="public_id: 'acme' is taken"):
        portal.create_business("Other", public_id="acme")
    with pytest.raises(ValidationError, match="brand_color"):
        portal.create_business("Other", brand_color="red")
    with pytest.raises(ValidationError, match="logo"):
        portal.create_business("Other", logo=b"<svg onload=alert(1)>")
    with pytest.raises(ValidationError, match="colour"):
        portal.create_business("Other", colour="#ffffff")
    assert count(session, m.Business) == 1
    random_id = portal.create_business("Beta Ltd", brand_color="#1A73E8")
    assert random_id.public_id.startswith("biz_") and len(random_id.public_id) == 24
    assert random_id.brand_color == "#1a73e8"
    assert portal.update_business(random_id, tax_id="BR-123").tax_id == "BR-123"
    assert portal.get_business(random_id.public_id) == random_id


@pytest.mark.parametrize(
    ("kwargs", "field", "code"),
    [
        ({"public_id": "globex\n"}, "public_id", "invalid_public_id"),
        ({"invoice_prefix": "GLX\n"}, "invoice_prefix", "invalid_invoice_prefix"),
        ({"brand_color": "#1a73e8\n"}, "brand_color", "invalid_color"),
        ({"name": "Globex\nBcc: all@example.com"}, "name", "control_characters"),
        ({"name": "Globex\u2028Bcc: all@example.com"}, "name", "control_characters"),
        ({"name": "Globex\tInc"}, "name", "control_characters"),
    ],
)
def test_merchant_input_refuses_newlines_where_one_line_is_meant(
    session: Session, business: m.Business, kwargs: dict, field: str, code: str
) -> None:
    """V1, M3: a trailing newline slips past no pattern, and a name (it goes into the subject of
    every mail) is one line; each is a ValidationError with its code, and nothing is written."""
    arguments = {"name": "Globex", **kwargs}
    with pytest.raises(ValidationError) as error:
        portal.create_business(**arguments)
    assert (error.value.field, error.value.code) == (field, code)
    assert count(session, m.Business) == 1


def test_product_plan_and_customer_names_are_one_line(
    session: Session, business: m.Business, customer: m.Customer
) -> None:
    """M3: a line break in a product, plan or customer name is refused (code
    ``control_characters``); an address keeps its lines."""
    calls = {
        "product": lambda: portal.start_subscription(
            customer, product="Cloud\nBcc: all@example.com", price=2900, currency="USD"
        ),
        "plan": lambda: portal.start_subscription(
            customer, product="Cloud", plan="Pro\r\nX-Spam: yes", price=2900, currency="USD"
        ),
        "name": lambda: portal.upsert_customer(business, customer.email, name="Ana\nSouza"),
    }
    for field, call in calls.items():
        with pytest.raises(ValidationError) as error:
            call()
        assert (error.value.field, error.value.code) == (field, "control_characters")
    assert count(session, m.Subscription) == 0
    assert customer.name == "Ana Souza"
    updated = portal.update_business(business, address="Rua Augusta 100\n\tSão Paulo")
    assert updated.address == "Rua Augusta 100\n\tSão Paulo"


def test_subscription_periods_follow_the_calendar(customer: m.Customer) -> None:
    start = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
    subscription = portal.start_subscription(
        customer, product="Cloud", price=1000, currency="eur", start=start, quantity=3
    )
    assert subscription.currency == "EUR"
    assert subscription.amount == 3000
    assert subscription.current_period_end == datetime(2026, 2, 28, 10, 0, tzinfo=UTC)
    assert subscription.next_billing_at == subscription.current_period_end
    assert add_interval(start, "year") == datetime(2027, 1, 31, 10, 0, tzinfo=UTC)
    assert add_interval(datetime(2024, 2, 29, tzinfo=UTC), "year") == datetime(
        2025, 2, 28, tzinfo=UTC
    )
    assert add_interval(start, "week", 2) == datetime(2026, 2, 14, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "field", "code"),
    [
        ({"price": -1}, "price", "negative"),
        ({"price": 9.99}, "price", "not_minor_units"),
        ({"currency": "XYZ"}, "currency", "invalid_currency"),
        ({"interval": "fortnight"}, "interval", "invalid_choice"),
        ({"quantity": 0}, "quantity", "too_small"),
        ({"product": " "}, "product", "required"),
        ({"status": "on_hold"}, "status", "invalid_choice"),
        ({"start": datetime(2026, 1, 1)}, "start", "naive_datetime"),
    ],
)
def test_bad_subscription_input_names_the_field(
    session: Session, customer: m.Customer, kwargs: dict, field: str, code: str
) -> None:
    arguments = {"product": "Cloud", "price": 1000, "currency": "USD"} | kwargs
    with pytest.raises(ValidationError) as error:
        portal.start_subscription(customer, **arguments)
    assert (error.value.field, error.value.code) == (field, code)
    assert count(session, m.Subscription) == 0


def test_invoices_are_numbered_in_sequence_and_keep_a_snapshot(
    business: m.Business, customer: m.Customer
) -> None:
    first = portal.issue_invoice(customer, [LINE, LINE | {"quantity": 2}], currency="USD", tax=870)
    second = portal.issue_invoice(customer, [LINE], currency="USD")
    assert (first.number, second.number) == ("ACMECL-TEST-000001", "ACMECL-TEST-000002")
    live = portal.upsert_customer(business, "ana@example.com", mode="live")
    assert portal.issue_invoice(live, [LINE], currency="USD").number == "ACMECL-000001"
    assert (first.subtotal, first.tax, first.total) == (8700, 870, 9570)
    assert [line.amount for line in first.lines] == [2900, 5800]
    assert first.status == "open"
    portal.update_business(business, name="Acme Cloud GmbH")
    portal.upsert_customer(business, customer.email, name="Ana Maria")
    assert first.business_snapshot["name"] == "Acme Cloud"
    assert first.customer_snapshot["name"] == "Ana Souza"


@pytest.mark.parametrize(
    ("lines", "kwargs", "field", "code"),
    [
        ([], {}, "lines", "no_lines"),
        ([{"description": "x"}], {}, "lines[0].unit_amount", "not_minor_units"),
        ([LINE, {"unit_amount": 5}], {}, "lines[1].description", "required"),
        ([LINE | {"quantity": 0}], {}, "lines[0].quantity", "too_small"),
        ([LINE | {"discount": 5}], {}, "lines[0].discount", "unknown_field"),
        ([LINE], {"tax": -1}, "tax", "negative"),
        ([LINE], {"currency": "dollars"}, "currency", "invalid_currency"),
        ([LINE], {"status": "paid"}, "status", "invalid_choice"),
    ],
)
def test_bad_invoice_input_names_the_field_and_uses_no_number(
    session: Session, business: m.Business, customer: m.Customer, lines, kwargs, field, code
) -> None:
    with pytest.raises(ValidationError) as error:
        portal.issue_invoice(customer, lines, **({"currency": "USD"} | kwargs))
    assert (error.value.field, error.value.code) == (field, code)
    assert count(session, m.Invoice) == 0
    assert portal.issue_invoice(customer, [LINE], currency="USD").number == "ACMECL-TEST-000001"


def test_payments_settle_invoices(session: Session, customer: m.Customer) -> None:
    invoice = portal.issue_invoice(customer, [LINE], currency="USD")
    with pytest.raises(ValidationError, match="exceeds the amount due"):
        portal.record_payment(customer, invoice=invoice, amount=3000, currency="USD")
    with pytest.raises(ValidationError, match="currency"):
        portal.record_payment(customer, invoice=invoice, amount=2900, currency="EUR")
    portal.record_payment(customer, invoice=invoice, amount=900, currency="USD")
    assert invoice.status == "open"
    paid_at = datetime(2026, 11, 1, tzinfo=UTC)
    portal.record_payment(customer, invoice=invoice, amount=2000, currency="USD", at=paid_at)
    assert (invoice.status, invoice.paid_at) == ("paid", paid_at)
    with pytest.raises(ValidationError, match="is paid; it takes no payments"):
        portal.record_payment(customer, invoice=invoice, amount=1, currency="USD")
    assert count(session, m.Payment) == 2


def test_a_payment_recorded_twice_with_one_key_counts_once(
    session: Session, customer: m.Customer
) -> None:
    invoice = portal.issue_invoice(customer, [LINE], currency="USD")
    first = portal.record_payment(
        customer, invoice=invoice, amount=2900, currency="USD", idempotency_key="evt_1"
    )
    again = portal.record_payment(
        customer, invoice=invoice, amount=2900, currency="USD", idempotency_key="evt_1"
    )
    assert first.id == again.id
    with pytest.raises(ValidationError, match="idempotency_key"):
        portal.record_payment(customer, amount=5, currency="USD", idempotency_key="evt_1")
    assert count(session, m.Payment) == 1


def test_failed_payments_need_a_reason_and_leave_the_invoice_open(
    customer: m.Customer,
) -> None:
    invoice = portal.issue_invoice(customer, [LINE], currency="USD")
    with pytest.raises(ValidationError) as error:
        portal.record_payment(
            customer, invoice=invoice, amount=2900, currency="USD", status="failed"
        )
    assert error.value.field == "failure_reason"
    payment = portal.record_payment(
        customer,
        invoice=invoice,
        amount=2900,
        currency="USD",
        status="failed",
        failure_reason="Card declined",
    )
    assert payment.failure_reason == "Card declined"
    assert invoice.status == "open"


def test_refunds_never_exceed_the_payment(session: Session, customer: m.Customer) -> None:
    payment = portal.record_payment(customer, amount=1000, currency="USD")
    portal.record_refund(payment, amount=400, reason="Partial")
    with pytest.raises(ValidationError, match=r"exceeds what is left to refund \(600\)"):
        portal.record_refund(payment, amount=601)
    rest = portal.record_refund(payment)
    assert rest.amount == 600
    with pytest.raises(ValidationError, match="amount"):
        portal.record_refund(payment)
    failed = portal.record_payment(
        customer, amount=5, currency="USD", status="failed", failure_reason="declined"
    )
    with pytest.raises(ValidationError, match="a failed payment cannot be refunded"):
        portal.record_refund(failed)
    assert count(session, m.Refund) == 2


def test_a_failed_renewal_puts_the_subscription_on_hold_with_its_dues(
    session: Session, subscription: m.Subscription
) -> None:
    old_end = subscription.current_period_end
    invoice = portal.record_failed_renewal(subscription, reason="Your card was declined.")
    assert subscription.status == "on_hold"
    assert invoice.status == "open" and invoice.total == 2900
    assert invoice.subscription_id == subscription.id
    assert subscription.current_period_start == old_end
    failed = session.scalars(sa.select(m.Payment).filter_by(invoice_id=invoice.id)).one()
    assert (failed.status, failed.failure_reason) == ("failed", "Your card was declined.")

    portal.record_failed_renewal(subscription, reason="Insufficient funds.")
    total, invoices = portal.outstanding_dues(subscription)
    assert total == 5800 and len(invoices) == 2
    assert subscription.status == "on_hold"


def test_a_failed_renewal_is_recorded_once_per_key(
    session: Session, subscription: m.Subscription
) -> None:
    first = portal.record_failed_renewal(subscription, reason="declined", idempotency_key="r1")
    again = portal.record_failed_renewal(subscription, reason="declined", idempotency_key="r1")
    assert first.id == again.id
    assert count(session, m.Invoice) == 1
    portal.record_payment(subscription.customer, amount=1, currency="USD", idempotency_key="p1")
    with pytest.raises(ValidationError, match="idempotency_key"):
        portal.record_failed_renewal(subscription, reason="declined", idempotency_key="p1")


def test_a_failed_renewal_that_breaks_halfway_leaves_nothing(
    session: Session, subscription: m.Subscription
) -> None:
    """D3: the database fails while writing the failed payment, after the status
    change and the invoice were written; all of it rolls back."""

    def fail(*args: object) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))

    sa.event.listen(m.Payment, "before_insert", fail)
    try:
        with pytest.raises(sa.exc.OperationalError):
            portal.record_failed_renewal(subscription, reason="declined")
    finally:
        sa.event.remove(m.Payment, "before_insert", fail)
    session.expire_all()
    assert subscription.status == "active"
    assert count(session, m.Invoice) == 0
    business = session.get(m.Business, subscription.customer.business_id)
    assert business is not None and business.invoice_counter_test == 0


def test_a_cancelled_subscription_cannot_fail_a_renewal(
    session: Session, subscription: m.Subscription
) -> None:
    portal.transition(subscription, "cancelled", cancelled_at=datetime.now(UTC))
    session.commit()
    with pytest.raises(InvalidTransition, match="cannot become 'on_hold' from 'cancelled'"):
        portal.record_failed_renewal(subscription, reason="declined")
    assert count(session, m.Invoice) == 0


@pytest.mark.parametrize("source", m.SUBSCRIPTION_STATUSES)
@pytest.mark.parametrize("target", m.SUBSCRIPTION_STATUSES)
def test_every_transition_is_allowed_or_refused_as_the_table_says(
    session: Session, subscription: m.Subscription, source: str, target: str
) -> None:
    session.execute(sa.update(m.Subscription).values(status=source))
    session.commit()
    session.refresh(subscription)
    if source in ALLOWED_FROM[target]:
        portal.transition(subscription, target)
        session.commit()
        assert subscription.status == target
    else:
        with pytest.raises(InvalidTransition):
            portal.transition(subscription, target)
        session.rollback()
        session.refresh(subscription)
        assert subscription.status == source


def test_license_keys(session: Session, customer: m.Customer) -> None:
    generated = portal.issue_license_key(customer, product="Acme CLI", activation_limit=3)
    assert len(generated.key) == 29 and generated.key.count("-") == 4
    portal.issue_license_key(customer, product="Acme CLI", key="MY-OWN-KEY-1")
    with pytest.raises(ValidationError, match="key: is already issued"):
        portal.issue_license_key(customer, product="Acme CLI", key="MY-OWN-KEY-1")
    with pytest.raises(ValidationError) as error:
        portal.issue_license_key(customer, product="Acme CLI", activation_limit=0)
    assert error.value.field == "activation_limit"
    assert count(session, m.LicenseKey) == 2


def test_a_provider_token_that_is_a_card_number_is_caught() -> None:
    """P1: the check the payment-method code uses refuses a Luhn-valid card number."""
    from flask_customer_portal.validation import not_a_card_number

    with pytest.raises(ValidationError, match="looks like a card number"):
        not_a_card_number("provider_token", "4242 4242 4242 4242")
    assert not_a_card_number("provider_token", "tok_4242abcd") == "tok_4242abcd"


@pytest.mark.postgresql_only
def test_concurrent_invoices_never_share_a_number(app: Flask, customer: m.Customer) -> None:
    numbers: list[str] = []
    customer_id = customer.id
    barrier = threading.Barrier(8)

    def issue() -> None:
        with app.app_context():
            session = app.extensions["customer_portal"].session
            own = session.get(m.Customer, customer_id)
            barrier.wait()
            numbers.append(portal.issue_invoice(own, [LINE], currency="USD").number)

    run_threads(issue, 8)
    assert len(numbers) == 8 and len(set(numbers)) == 8


@pytest.mark.postgresql_only
def test_racing_transitions_have_one_winner(app: Flask, subscription: m.Subscription) -> None:
    """P2: ten requests cancel and hold the same subscription at once; one change wins."""
    wins: list[str] = []
    subscription_id = subscription.id
    barrier = threading.Barrier(10)

    def change(target: str) -> Callable[[], None]:
        def run() -> None:
            with app.app_context():
                session = app.extensions["customer_portal"].session
                own = session.get(m.Subscription, subscription_id)
                barrier.wait()
                try:
                    portal.transition(own, target)
                    session.commit()
                    wins.append(target)
                except InvalidTransition:
                    session.rollback()

        return run

    threads = [threading.Thread(target=change("cancelled")) for _ in range(5)]
    threads += [threading.Thread(target=change("expired")) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1


@pytest.mark.postgresql_only
def test_refunds_racing_on_one_payment_never_exceed_it(
    app: Flask, session: Session, customer: m.Customer
) -> None:
    """Ten refunds of 400 on a payment of 1000 at once: two pass, the others are refused."""
    payment_id = portal.record_payment(customer, amount=1000, currency="USD").id
    barrier = threading.Barrier(10)
    outcomes: list[str] = []

    def refund() -> None:
        with app.app_context():
            own = app.extensions["customer_portal"].session.get(m.Payment, payment_id)
            barrier.wait()
            try:
                portal.record_refund(own, amount=400)
                outcomes.append("refunded")
            except ValidationError as error:
                outcomes.append(error.code)

    run_threads(refund, 10)
    assert sorted(outcomes) == ["exceeds_refundable"] * 8 + ["refunded"] * 2
    refunds = session.scalars(sa.select(m.Refund.amount).filter_by(payment_id=payment_id))
    assert list(refunds) == [400, 400]


def test_identifiers_of_other_systems_may_look_like_card_numbers(
    business: m.Business, customer: m.Customer
) -> None:
    """P1 without false alarms: a processor's 16-digit reference, a numeric idempotency key
    or an unformatted tax number is an identifier, not a card number (this one passes the Luhn
    check, as one in ten such references does); the same digits as a name are refused."""
    reference = "4242424242424242"
    invoice = portal.issue_invoice(customer, [LINE], currency="USD")
    payment = portal.record_payment(
        customer,
        invoice=invoice,
        amount=invoice.total,
        currency="USD",
        provider_reference=reference,
        idempotency_key=reference,
    )
    assert (payment.provider_reference, payment.idempotency_key) == (reference, reference)
    portal.update_business(business, tax_id="11222333000181")
    assert business.tax_id == "11222333000181"
    with pytest.raises(ValidationError) as error:
        portal.upsert_customer(business, customer.email, name=reference)
    assert error.value.code == "card_number"


def test_a_paid_renewal_moves_the_period_and_records_its_paid_invoice(
    app: Flask, client: FlaskClient, session: Session, signed_in: m.Customer
) -> None:
    """A renewal paid in the merchant's system shows in the portal: new dates, a paid invoice."""
    subscription = portal.start_subscription(
        signed_in, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
    )
    old_end = subscription.current_period_end
    with record_signals(app, {"renewed": signals.subscription_renewed}) as received:
        invoice = portal.record_renewal(subscription, provider_reference="ch_1")
    new_end = add_interval(old_end, "month")
    assert (subscription.status, subscription.current_period_start) == ("active", old_end)
    assert subscription.current_period_end == subscription.next_billing_at == new_end
    assert (invoice.status, invoice.total, invoice.paid_at) == ("paid", 2900, invoice.issued_at)
    [payment] = session.scalars(sa.select(m.Payment).filter_by(invoice_id=invoice.id))
    assert (payment.status, payment.amount, payment.provider_reference) == (
        "succeeded",
        2900,
        "ch_1",
    )
    assert signalled(received, "renewed") == [
        {
            "customer": signed_in.public_id,
            "subscription": subscription.public_id,
            "invoice": invoice.public_id,
            "payment": payment.public_id,
        }
    ]
    page = client.get("/portal/subscriptions").text
    assert f"Renews on {formatting.date(new_end, 'en')}." in page
    period = f"{formatting.date(old_end, 'en')} – {formatting.date(new_end, 'en')}"
    assert [line.description for line in invoice.lines] == [f"Acme Cloud Pro ({period})"]


def test_a_renewal_takes_the_merchants_period_lines_and_tax_and_is_recorded_once_per_key(
    session: Session, subscription: m.Subscription
) -> None:
    ends = subscription.current_period_end + timedelta(days=10)
    lines = [LINE, {"description": "Extra seat", "unit_amount": 500, "quantity": 2}]
    first = portal.record_renewal(
        subscription, period_end=ends, lines=lines, tax=390, idempotency_key="renewal-7"
    )
    again = portal.record_renewal(
        subscription, period_end=ends, lines=lines, tax=390, idempotency_key="renewal-7"
    )
    assert first.id == again.id and count(session, m.Invoice) == 1
    assert subscription.current_period_end == ends
    assert (first.subtotal, first.tax, first.total) == (3900, 390, 4290)
    assert [line.description for line in first.lines] == ["Acme Cloud Pro", "Extra seat"]
    portal.record_payment(subscription.customer, amount=1, currency="USD", idempotency_key="p1")
    with pytest.raises(ValidationError, match="idempotency_key"):
        portal.record_renewal(subscription, idempotency_key="p1")
    # A paid renewal's key is not a failed renewal's, nor the other way round.
    with pytest.raises(ValidationError, match="idempotency_key"):
        portal.record_failed_renewal(subscription, reason="declined", idempotency_key="renewal-7")
    portal.record_failed_renewal(subscription, reason="declined", idempotency_key="failed-8")
    with pytest.raises(ValidationError, match="idempotency_key"):
        portal.record_renewal(subscription, idempotency_key="failed-8")


@pytest.mark.parametrize("how", ["cancelling", "on_hold", "cancelled", "early_end"])
def test_a_renewal_is_refused_when_the_subscription_cannot_renew_and_writes_nothing(
    session: Session, subscription: m.Subscription, how: str
) -> None:
    """V1: a clear error, and nothing written: no period moved, no invoice, no payment."""
    if how == "cancelling":
        portal.cancel_subscription(subscription, at_period_end=True)
    elif how in ("on_hold", "cancelled"):
        portal.transition(subscription, how)
        session.commit()
    before = (subscription.status, subscription.current_period_end)
    if how == "early_end":
        with pytest.raises(ValidationError, match="period_end"):
            portal.record_renewal(subscription, period_end=subscription.current_period_start)
    else:
        with pytest.raises(InvalidTransition):
            portal.record_renewal(subscription)
    session.expire_all()
    assert (subscription.status, subscription.current_period_end) == before
    assert count(session, m.Invoice) == count(session, m.Payment) == 0


def test_set_up_code_can_upsert_its_business_again_and_again(app: Flask, session: Session) -> None:
    """Re-running set-up code updates the business instead of failing with "taken"."""
    with app.app_context():
        first = portal.upsert_business("shop", "Shop", invoice_prefix="SHOP")
        again = portal.upsert_business(
            "shop", "Shop & Co", invoice_prefix="OTHER", support_email="help@shop.example"
        )
        assert again.id == first.id
        assert (again.name, again.support_email, again.invoice_prefix) == (
            "Shop & Co",
            "help@shop.example",
            "SHOP",
        )
        assert (
            session.scalar(
                sa.select(sa.func.count()).select_from(m.Business).filter_by(public_id="shop")
            )
            == 1
        )
        with pytest.raises(ValidationError, match="public_id"):
            portal.upsert_business("Not An Id", "Shop")
        with pytest.raises(ValidationError, match="brand_color"):
            portal.upsert_business("shop", "Shop", brand_color="blue")
        kept = portal.get_business("shop")
        assert kept is not None and kept.name == "Shop & Co"


@pytest.mark.postgresql_only
def test_processes_upserting_one_business_at_once_end_with_one(app: Flask) -> None:
    """Set-up code starting in eight workers at once: one business, and no worker fails."""
    ids: list[int] = []
    barrier = threading.Barrier(8)

    def upsert() -> None:
        with app.app_context():
            barrier.wait()
            ids.append(portal.upsert_business("race", "Race", support_email="a@race.example").id)

    run_threads(upsert, 8)
    assert len(ids) == 8 and len(set(ids)) == 1
