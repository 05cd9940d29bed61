"""The demo data of Acme Cloud, made through the portal's public data API only.

Three customers show every state a newcomer should see (Ana: active, a year of
paid invoices, license keys; Bruno: on hold with dues; Carla: cancelled), and a
few hundred generated ones, from many languages and scripts, fill the lists.
The same seed gives the same people and plans every time.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask_customer_portal import (
    allow_switch,
    create_business,
    get_price,
    issue_invoice,
    issue_license_key,
    record_failed_renewal,
    record_payment,
    save_payment_method,
    start_subscription,
    transition,
    upsert_customer,
    upsert_price,
    upsert_product,
)
from flask_customer_portal.models import Business, Customer, Subscription

from . import BUSINESS_ID
from .models import db

LOGO = Path(__file__).parent / "static" / "acme-logo.png"
PRODUCT = "Acme Cloud"
CURRENCY = "USD"
#: Plans and their monthly price in cents, with how often customers pick each.
PLANS = {"Starter": 900, "Pro": 2900, "Team": 9900}
PLAN_WEIGHTS = (5, 4, 1)
#: A seat-based plan: its price per seat in cents, and its seat limits.
SEATS = ("Business", 1200, {"seats_minimum": 3, "seats_maximum": 50})
#: Add-ons and their monthly price in cents.
ADD_ONS = {"Extra storage": 500, "Priority support": 1900}
#: Cards the store's customers keep on file: (brand, last four digits).
CARDS = (("visa", "4242"), ("mastercard", "4444"), ("amex", "8431"))
DECLINES = (
    "Your card was declined.",
    "Your card has insufficient funds.",
    "Your card has expired.",
)

#: A name, or a name and its Latin spelling when it is not written in Latin letters.
Name = str | tuple[str, str]


@dataclass(frozen=True)
class Culture:
    """How people of one language are named; surnames may differ for men and women."""

    locale: str
    women: tuple[Name, ...]
    men: tuple[Name, ...]
    surnames: tuple[Name, ...]
    men_surnames: tuple[Name, ...] | None = None
    family_first: bool = False
    joiner: str = " "


CULTURES = (
    Culture(
        "pt_BR",
        ("Ana", "Beatriz", "Júlia", "Mariana", "Letícia", "Camila", "Fernanda"),
        ("João", "Lucas", "Gabriel", "Rafael", "Thiago", "Matheus", "Luís"),
        ("Silva", "Santos", "Oliveira", "Souza", "Conceição", "Araújo", "Gonçalves", "Magalhães"),
    ),
    Culture(
        "es",
        ("María", "Lucía", "Sofía", "Valentina", "Inés", "Carmen"),
        ("José", "Alejandro", "Andrés", "Martín", "Iñigo", "Pablo"),
        ("García", "Fernández", "López", "Martínez", "Núñez", "Peña", "Ibáñez"),
    ),
    Culture(
        "fr",
        ("Chloé", "Léa", "Camille", "Éloïse", "Zoë", "Maëlle"),
        ("Étienne", "François", "Hugo", "Noël", "Jérôme", "Loïc"),
        ("Lefèvre", "Dubois", "Moreau", "Girard", "Bérenger", "Fontaine"),
    ),
    Culture(
        "de",
        ("Lena", "Anja", "Jana", "Käthe", "Greta", "Jördis"),
        ("Jürgen", "Jörg", "Lukas", "Felix", "Matthias", "Sören"),
        ("Müller", "Schäfer", ("Weiß", "Weiss"), "Köhler", "Schröder", "Becker"),
    ),
    Culture(
        "en",
        ("Emily", "Olivia", "Hannah", "Grace", "Chloe", "Amelia"),
        ("James", "Liam", "Noah", "Oliver", "Ethan", "Harry"),
        ("Smith", "Johnson", "O'Brien", "Walker", "Harris", "Brown", "Nguyen"),
    ),
    Culture(
        "ru",
        (("Анна", "Anna"), ("Мария", "Maria"), ("Екатерина", "Ekaterina"), ("Ольга", "Olga")),
        (("Дмитрий", "Dmitry"), ("Сергей", "Sergey"), ("Алексей", "Alexey"), ("Иван", "Ivan")),
        (("Иванова", "Ivanova"), ("Смирнова", "Smirnova"), ("Кузнецова", "Kuznetsova")),
        (("Иванов", "Ivanov"), ("Смирнов", "Smirnov"), ("Кузнецов", "Kuznetsov")),
    ),
    Culture(
        "el",
        (("Ελένη", "Eleni"), ("Σοφία", "Sofia"), ("Κατερίνα", "Katerina"), ("Δήμητρα", "Dimitra")),
        (("Γιώργος", "Giorgos"), ("Νίκος", "Nikos"), ("Κώστας", "Kostas"), ("Γιάννης", "Giannis")),
        (("Παπαδοπούλου", "Papadopoulou"), ("Γεωργίου", "Georgiou"), ("Νικολάου", "Nikolaou")),
        (("Παπαδόπουλος", "Papadopoulos"), ("Γεωργίου", "Georgiou"), ("Νικολάου", "Nikolaou")),
    ),
    Culture(
        "ja",
        (("花子", "Hanako"), ("陽菜", "Hina"), ("結衣", "Yui"), ("美咲", "Misaki")),
        (("太郎", "Taro"), ("翔太", "Shota"), ("大輝", "Daiki"), ("蓮", "Ren")),
        (("佐藤", "Sato"), ("鈴木", "Suzuki"), ("高橋", "Takahashi"), ("田中", "Tanaka")),
        family_first=True,
    ),
    Culture(
        "zh",
        (("芳", "Fang"), ("静", "Jing"), ("丽", "Li"), ("敏", "Min")),
        (("伟", "Wei"), ("强", "Qiang"), ("磊", "Lei"), ("军", "Jun")),
        (("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen")),
        family_first=True,
        joiner="",
    ),
    Culture(
        "ar",
        (("فاطمة", "Fatima"), ("ليلى", "Layla"), ("مريم", "Maryam"), ("نور", "Nour")),
        (("محمد", "Mohammed"), ("أحمد", "Ahmed"), ("عمر", "Omar"), ("يوسف", "Youssef")),
        (("حداد", "Haddad"), ("خوري", "Khoury"), ("منصور", "Mansour")),
    ),
)

#: Generated customers whose names the demo always shows: (name, email, locale).
FEATURED = (
    ("João Conceição", "joao.conceicao@example.com", "pt_BR"),
    ("Zoë", "zoe@example.org", "en"),
    ("Анна", "anna@example.net", "ru"),
    ("Ελένη", "eleni@example.org", "el"),
)
FEATURED_EMAILS = frozenset(email for _, email, _ in FEATURED)
DOMAINS = ("example.com", "example.org", "example.net")


def seed(now: datetime, *, crowd: int = 300, random_seed: int = 2024) -> int:
    """Create the business ``acme`` and its demo customers; return how many customers.

    :param now: the moment the demo's history leads up to (aware).
    :param crowd: how many generated customers to add beside Ana, Bruno and Carla.
    """
    business = create_business(
        "Acme Cloud",
        public_id=BUSINESS_ID,
        invoice_prefix="ACME",
        support_email="support@example.com",
        address="Acme Cloud Inc.\n548 Market Street\nSan Francisco, CA 94104\nUnited States",
        tax_id="US EIN 12-3456789",
        brand_color="#2563eb",
        logo=LOGO.read_bytes(),
        # Every self-service switch on, so each flow can be tried.
        plan_changes=True,
        quantity_changes=True,
        add_ons=True,
        pause=True,
        cancellation_reasons=True,
        retention_offer=True,
        downgrades_at="period_end",
        proration="prorate",
    )
    _catalogue(business)
    _ana(business, now)
    _bruno(business, now)
    _carla(business, now)
    rng = random.Random(random_seed)
    for name, email, locale in _people(rng, crowd):
        customer = upsert_customer(business, email, name=name, locale=locale)
        # The featured names always have paid invoices: their PDFs show any script.
        _random_history(customer, now, rng, active=email in FEATURED_EMAILS)
    return 3 + crowd


def _catalogue(business: Business) -> None:
    """Declare the store's plans, its seat-based plan and its add-ons, and the switches."""
    product = upsert_product(business, "acme_cloud", PRODUCT)
    plans = [
        upsert_price(product, _price_id(plan), name=plan, amount=amount, currency=CURRENCY)
        for plan, amount in PLANS.items()
    ]
    name, amount, limits = SEATS
    seats = upsert_price(
        product, _price_id(name), name=name, amount=amount, currency=CURRENCY, **limits
    )
    for add_on, amount in ADD_ONS.items():
        upsert_price(
            product, _price_id(add_on), name=add_on, amount=amount, currency=CURRENCY, add_on=True
        )
    for index, plan in enumerate(plans):
        for other in [*plans[index + 1 :], seats]:
            allow_switch(plan, other, both_ways=True)


def _price_id(name: str) -> str:
    return "price_" + name.lower().replace(" ", "_")


def _ana(business: Business, now: datetime) -> None:
    ana = upsert_customer(
        business, "ana@example.com", name="Ana Souza", locale="pt_BR", phone="+55 11 98765-4321"
    )
    renewed = _latest(now, day=5)
    subscription = _subscribe(ana, "Pro", renewed)
    _card_on_file(ana, now)
    for months_ago in range(11, -1, -1):
        _paid_invoice(subscription, _add_months(renewed, -months_ago))
    issue_license_key(
        ana, product="Acme Cloud Desktop", subscription=subscription, activation_limit=3
    )
    issue_license_key(ana, product="Acme Cloud CLI", activation_limit=1)


def _bruno(business: Business, now: datetime) -> None:
    bruno = upsert_customer(business, "bruno@example.com", name="Bruno Lima", locale="pt_BR")
    renewed = _latest(now, day=12)
    subscription = _subscribe(bruno, "Starter", _add_months(renewed, -2))
    _paid_invoice(subscription, _add_months(renewed, -2))
    for months_ago, reason in ((1, DECLINES[0]), (0, DECLINES[1])):
        record_failed_renewal(subscription, reason=reason, at=_add_months(renewed, -months_ago))


def _carla(business: Business, now: datetime) -> None:
    carla = upsert_customer(business, "carla@example.com", name="Carla Dias", locale="pt_BR")
    renewed = _latest(now, day=20)
    _cancelled(carla, "Team", _add_months(renewed, -6), paid_months=3)


def _random_history(
    customer: Customer, now: datetime, rng: random.Random, *, active: bool = False
) -> None:
    """Give a generated customer a plan in a random state, or none (about a third).

    ``active`` makes it an active plan with paid invoices.
    """
    plan = rng.choices(tuple(PLANS), PLAN_WEIGHTS)[0]
    renewed = _latest(now, day=rng.randint(1, 28))
    roll = 0.0 if active else rng.random()
    if roll < 0.45:
        months = rng.randint(1, 4)
        subscription = _subscribe(customer, plan, renewed)
        _card_on_file(customer, now)
        for months_ago in range(months - 1, -1, -1):
            _paid_invoice(subscription, _add_months(renewed, -months_ago))
    elif roll < 0.55:
        subscription = _subscribe(customer, plan, _add_months(renewed, -1))
        _paid_invoice(subscription, _add_months(renewed, -1))
        record_failed_renewal(subscription, reason=rng.choice(DECLINES), at=renewed)
    elif roll < 0.65:
        months = rng.randint(1, 3)
        starts = _add_months(renewed, -months - rng.randint(0, 6))
        _cancelled(customer, plan, starts, paid_months=months)


def _subscribe(customer: Customer, plan: str, start: datetime) -> Subscription:
    price = get_price(customer.business, mode=customer.mode, external_id=_price_id(plan))
    assert price is not None
    return start_subscription(customer, price=price, start=start)


def _card_on_file(customer: Customer, now: datetime) -> None:
    """Save the card the store's processor keeps for ``customer``: it pays their plans.

    Each customer's card comes from a generator of its own, seeded by their
    email, so the crowd's other choices stay the same. The demo never charges
    these cards (an on-hold plan is paid with a card added on the provider's page).
    """
    rng = random.Random(customer.email)
    brand, last4 = rng.choice(CARDS) if customer.email != "ana@example.com" else CARDS[0]
    save_payment_method(
        customer,
        provider_token=f"demo_card_{customer.public_id}",
        brand=brand,
        last4=last4,
        exp_month=rng.randint(1, 12),
        exp_year=now.year + rng.randint(1, 4),
    )


def _paid_invoice(subscription: Subscription, starts: datetime) -> None:
    """Issue the invoice of the period that ``starts``, paid a few minutes later."""
    ends = _add_months(starts, 1)
    line = {
        "description": f"{PRODUCT} {subscription.plan} ({starts:%Y-%m-%d} – {ends:%Y-%m-%d})",
        "unit_amount": subscription.amount,
    }
    invoice = issue_invoice(
        subscription.customer,
        [line],
        currency=subscription.currency,
        subscription=subscription,
        issued_at=starts,
        due_at=starts,
    )
    record_payment(
        subscription.customer,
        amount=invoice.total,
        currency=invoice.currency,
        invoice=invoice,
        provider_reference=f"test_ch_{invoice.number}",
        at=starts + timedelta(minutes=3),
    )


def _cancelled(customer: Customer, plan: str, starts: datetime, *, paid_months: int) -> None:
    """Subscribe on ``starts``, pay ``paid_months``, cancel in the last one, end with it."""
    subscription = _subscribe(customer, plan, starts)
    for month in range(paid_months):
        _paid_invoice(subscription, _add_months(starts, month))
    last = _add_months(starts, paid_months - 1)
    transition(
        subscription,
        "cancelled",
        current_period_start=last,
        current_period_end=_add_months(last, 1),
        next_billing_at=None,
        cancelled_at=last + timedelta(days=9, hours=4),
        ended_at=_add_months(last, 1),
    )
    # transition() leaves the commit to the caller; the portal shares the store's session.
    db.session.commit()


def _people(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    """Return ``count`` people as (name, email, locale): the featured ones, then random ones."""
    people = list(FEATURED[:count])
    taken = {email for _, email, _ in people} | {
        "ana@example.com",
        "bruno@example.com",
        "carla@example.com",
    }
    while len(people) < count:
        culture = rng.choice(CULTURES)
        woman = rng.random() < 0.5
        index = rng.randrange(len(culture.surnames))
        given = _spell(rng.choice(culture.women if woman else culture.men))
        surnames = culture.surnames if woman else (culture.men_surnames or culture.surnames)
        family = _spell(surnames[index])
        first, second = (family, given) if culture.family_first else (given, family)
        local = f"{_handle(given[1])}.{_handle(family[1])}"
        domain = rng.choice(DOMAINS)
        email, number = f"{local}@{domain}", 1
        while email in taken:
            number += 1
            email = f"{local}{number}@{domain}"
        taken.add(email)
        people.append((first[0] + culture.joiner + second[0], email, culture.locale))
    return people


def _spell(name: Name) -> tuple[str, str]:
    """Return a name and its Latin spelling (the name without accents, if not given)."""
    if isinstance(name, tuple):
        return name
    return name, unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()


def _handle(latin: str) -> str:
    return re.sub(r"[^a-z0-9]", "", latin.lower())


def _latest(now: datetime, *, day: int) -> datetime:
    """Return the latest ``day`` of a month, at 09:00, that is not after ``now``."""
    moment = now.replace(day=day, hour=9, minute=0, second=0, microsecond=0)
    return moment if moment <= now else _add_months(moment, -1)


def _add_months(moment: datetime, months: int) -> datetime:
    """Return ``moment`` moved by whole months; the demo's days are at most the 28th."""
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)
