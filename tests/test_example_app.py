"""The example store: its demo data and its staff pages, as a newcomer would find them."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from example_app import create_app
from example_app.models import db
from flask_customer_portal import (
    ConfigurationError,
    add_on_options,
    cards,
    create_portal_session,
    get_business,
    list_payment_methods,
    local_messages,
    switch_options,
)
from flask_customer_portal.emails import send_queued
from flask_customer_portal.models import Customer, Invoice, LicenseKey, Subscription

from .conftest import IsolatedClient, csrf_token, open_link
from .helpers import form_token
from .stripe_server import StripeServer

PASSWORD = "correct horse battery staple"
SITE = "http://127.0.0.1:5000"


def make_app(database: Path) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "STAFF_PASSWORD": PASSWORD,
            "CUSTOMER_PORTAL_MAIL_DISPATCH": "manual",
        }
    )
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path / "acme.sqlite3")
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture(scope="module")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed once per module (a few seconds); each test gets a copy of the result."""
    database = tmp_path_factory.mktemp("seeded") / "acme.sqlite3"
    app = make_app(database)
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "Seeded business 'acme' with 303 customers." in result.output
    with app.app_context():
        db.engine.dispose()
    return database


@pytest.fixture
def seeded(app: Flask, tmp_path: Path, seeded_database: Path) -> Flask:
    shutil.copyfile(seeded_database, tmp_path / "acme.sqlite3")
    return app


@pytest.fixture
def client(seeded: Flask) -> FlaskClient:
    return seeded.test_client()


def customer(email: str) -> Customer:
    found = db.session.scalar(select(Customer).filter_by(email=email))
    assert found is not None
    return found


def subscription_of(email: str) -> Subscription:
    return db.session.scalars(select(Subscription).filter_by(customer_id=customer(email).id)).one()


def invoices_of(email: str) -> list[Invoice]:
    query = select(Invoice).filter_by(customer_id=customer(email).id).order_by(Invoice.issued_at)
    return list(db.session.scalars(query))


def invoice_statuses(email: str) -> list[str]:
    return [invoice.status for invoice in invoices_of(email)]


def sign_in(client: FlaskClient, password: str = PASSWORD, **query: str) -> tuple[int, str]:
    response = client.post(
        "/staff/login",
        query_string=query,
        data={
            "csrf_token": form_token(client, "/staff/login"),
            "email": "staff@example.com",
            "password": password,
        },
    )
    return response.status_code, response.headers.get("Location", "")


def sign_out(client: FlaskClient) -> int:
    token = form_token(client, "/staff/")
    return client.post("/staff/logout", data={"csrf_token": token}).status_code


def sign_in_as(seeded: Flask, client: FlaskClient, email: str) -> str:
    """Sign the customer with ``email`` in to the portal by a dynamic link; return their id."""
    with seeded.app_context():
        found = customer(email)
        link = create_portal_session(found).url
        public_id = found.public_id
    assert open_link(client, link, site=SITE).status_code == 303
    return public_id


def test_ana_has_a_year_of_paid_invoices_and_license_keys(seeded: Flask) -> None:
    with seeded.app_context():
        assert invoice_statuses("ana@example.com") == ["paid"] * 12
        invoices = invoices_of("ana@example.com")
        assert len({f"{invoice.issued_at:%Y-%m}" for invoice in invoices}) == 12
        assert all(invoice.paid_at and invoice.paid_at < datetime.now(UTC) for invoice in invoices)
        assert subscription_of("ana@example.com").status == "active"
        keys = db.session.scalar(
            select(func.count())
            .select_from(LicenseKey)
            .filter_by(customer_id=customer("ana@example.com").id)
        )
        assert keys == 2


def test_the_store_declares_a_catalogue_with_every_switch_on(seeded: Flask) -> None:
    """Ana, on Pro, may switch to the other plans and the seat-based one, and take add-ons."""
    with seeded.app_context():
        ana = subscription_of("ana@example.com")
        assert ana.price is not None and ana.price.label == "Acme Cloud Pro"
        assert [(p.name, p.amount) for p in switch_options(ana)] == [
            ("Starter", 900),
            ("Business", 1200),
            ("Team", 9900),
        ]
        assert [p.name for p in add_on_options(ana)] == ["Extra storage", "Priority support"]
        business = get_business("acme")
        assert business is not None and business.pause and business.retention_offer
        assert (business.downgrades_at, business.proration) == ("period_end", "prorate")


def test_bruno_is_on_hold_with_two_open_invoices(seeded: Flask) -> None:
    with seeded.app_context():
        assert subscription_of("bruno@example.com").status == "on_hold"
        assert invoice_statuses("bruno@example.com").count("open") == 2


def test_a_subscriber_sees_the_card_on_file_and_an_edit_button(
    seeded: Flask, client: FlaskClient
) -> None:
    """The seed saves each active subscriber's card through the data API, so Ana's page
    shows its brand and last four digits (in her Portuguese), not "none yet"."""
    with seeded.app_context():
        cards = list_payment_methods(customer("ana@example.com"))
        assert [(card.brand, card.last4, card.is_default) for card in cards] == [
            ("visa", "4242", True)
        ]
        assert subscription_of("ana@example.com").payment_method == cards[0]
        assert subscription_of("bruno@example.com").payment_method is None
    sign_in_as(seeded, client, "ana@example.com")
    page = client.get("/portal/subscriptions").get_data(as_text=True)
    assert "Visa com final 4242" in page and "Editar" in page


def test_carla_cancelled_after_paying(seeded: Flask) -> None:
    with seeded.app_context():
        subscription = subscription_of("carla@example.com")
        assert subscription.status == "cancelled"
        assert subscription.ended_at is not None
        assert set(invoice_statuses("carla@example.com")) == {"paid"}


def test_names_in_many_scripts(seeded: Flask) -> None:
    with seeded.app_context():
        names = set(db.session.scalars(select(Customer.name)))
    assert {"João Conceição", "Zoë", "Анна", "Ελένη"} <= names
    for script in ("[à-ÿ]", "[а-я]", "[α-ω]", "[\u4e00-\u9fff]", "[\u0600-\u06ff]"):
        assert any(re.search(script, name) for name in names - {"João Conceição", "Zoë"})


def test_seeding_twice_changes_nothing(seeded: Flask, runner: FlaskCliRunner) -> None:
    def counts() -> tuple[int | None, ...]:
        with seeded.app_context():
            return tuple(
                db.session.scalar(select(func.count()).select_from(model))
                for model in (Customer, Subscription, Invoice, LicenseKey)
            )

    before = counts()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0
    assert "already exists" in result.output
    assert "staff@example.com" in result.output
    assert counts() == before


def test_init_db_alone_makes_an_empty_store(app: Flask, runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["init-db"]).exit_code == 0
    with app.app_context():
        assert get_business("acme") is None
    client = app.test_client()
    assert sign_in(client)[0] == 302
    assert "seed-demo" in client.get("/staff/").get_data(as_text=True)


#: A production store's settings, but for the secrets each test sets.
PRODUCTION = {
    "SQLALCHEMY_DATABASE_URI": "sqlite://",
    "SESSION_COOKIE_SECURE": True,
    "CUSTOMER_PORTAL_EXTERNAL_URL": "https://acme.example.com",
    "CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
    "STAFF_PASSWORD": PASSWORD,
}


@pytest.mark.parametrize("key", [None, "acme-development-only"])
def test_outside_debug_the_store_refuses_its_development_secret_key(key: str | None) -> None:
    """Everyone knows it: a forged staff cookie would mint a link into any customer's portal."""
    with pytest.raises(ConfigurationError, match="SECRET_KEY is (not set|a development value)"):
        create_app(PRODUCTION | {"SECRET_KEY": key})


def test_outside_debug_the_store_refuses_its_demo_staff_password() -> None:
    with pytest.raises(ConfigurationError, match="STAFF_PASSWORD is the demo's password"):
        create_app(PRODUCTION | {"SECRET_KEY": "7" * 64, "STAFF_PASSWORD": "acme-staff-demo"})


def test_in_debug_the_store_runs_with_its_development_secrets(tmp_path: Path) -> None:
    """`make demo`: nothing configured but ``--debug``; staff sign in with the demo password."""
    app = create_app(
        {
            "DEBUG": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'acme.sqlite3'}",
            "CUSTOMER_PORTAL_MAIL_DISPATCH": "manual",
        }
    )
    app.test_client_class = IsolatedClient
    try:
        assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
        assert sign_in(app.test_client(), password="acme-staff-demo")[0] == 302
    finally:
        with app.app_context():
            db.engine.dispose()


def test_home_page_shows_where_the_portal_lives(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "Acme Cloud — the store" in page
    assert "/portal/test/login/acme" in page
    assert 'href="/staff/login"' in page


@pytest.mark.parametrize("path", ["/staff/", "/staff/customers/cus_whatever"])
def test_staff_pages_need_a_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login?next=")


def test_wrong_password_is_refused(client: FlaskClient) -> None:
    status, _ = sign_in(client, password="guess")
    assert status == 401
    assert client.get("/staff/").status_code == 302


def test_sign_in_without_the_form_token_is_refused(client: FlaskClient) -> None:
    response = client.post(
        "/staff/login", data={"email": "staff@example.com", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/staff/").status_code == 302


def test_sign_in_opens_the_customer_list(client: FlaskClient) -> None:
    assert sign_in(client) == (302, "/staff/")
    page = client.get("/staff/").get_data(as_text=True)
    assert "303 customers" in page
    assert page.count('href="/staff/customers/cus_') == 50
    assert "Page 1 of 7" in page


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(
    client: FlaskClient,
) -> None:
    assert sign_in(client, next="/staff/?q=ana") == (302, "/staff/?q=ana")
    assert sign_out(client) == 302
    assert sign_in(client, next="//evil.example/") == (302, "/staff/")


def test_search_by_email(client: FlaskClient) -> None:
    sign_in(client)
    page = client.get("/staff/", query_string={"q": "BRUNO@"}).get_data(as_text=True)
    assert "1 customer with" in page
    assert page.count('href="/staff/customers/cus_') == 1
    assert "bruno@example.com</a>" in page


def test_customer_page_shows_their_records(seeded: Flask, client: FlaskClient) -> None:
    with seeded.app_context():
        public_id = customer("ana@example.com").public_id
    sign_in(client)
    page = client.get(f"/staff/customers/{public_id}").get_data(as_text=True)
    assert "ana@example.com" in page
    assert "Ana Souza" in page
    assert page.count("$29.00") == 13  # the plan's price, and twelve invoices
    assert client.get("/staff/customers/cus_unknown").status_code == 404


def test_sign_out_needs_the_form_token_and_ends_the_staff_session(client: FlaskClient) -> None:
    sign_in(client)
    assert client.post("/staff/logout").status_code == 400
    assert client.get("/staff/").status_code == 200
    assert sign_out(client) == 302
    assert client.get("/staff/").status_code == 302


def test_the_static_link_mails_a_link_that_opens_the_portal(
    seeded: Flask, client: FlaskClient
) -> None:
    """The demo's first journey: type the email, read the mail locally, open the link."""
    login = "/portal/test/login/acme"
    token = csrf_token(client.get(login).text)
    sent = client.post(login, data={"csrf_token": token, "email": " Ana@Example.com "})
    assert "a link is on its way" in sent.text
    with seeded.app_context():
        assert send_queued() == (1, 0)
        assert local_messages()[0]["recipient"] == "ana@example.com"
    page = client.get("/dev/mail").text
    link = re.search(rf"{SITE}{login}/[\w.-]+", page)
    assert link is not None
    assert open_link(client, link[0], site=SITE).status_code == 303
    assert "ana@example.com" in client.get("/portal/").text
    assert open_link(client, link[0], site=SITE, page_status=410).status_code == 410


def test_share_invite_gives_both_links(seeded: Flask, client: FlaskClient) -> None:
    """Customers → customer → "Share invite": the static link, and a dynamic link that works."""
    with seeded.app_context():
        public_id = customer("bruno@example.com").public_id
    sign_in(client)
    page = client.get(f"/staff/customers/{public_id}").text
    invite = re.search(r'href="(/portal/staff/test/acme/customers/cus_\w+/invite)"', page)
    assert invite is not None
    invite_page = client.get(invite[1]).text
    assert f"{SITE}/portal/test/login/acme" in invite_page
    generated = client.post(invite[1], data={"csrf_token": csrf_token(invite_page)}).text
    dynamic = re.search(rf"{SITE}/portal/test/login/acme/[\w.-]+", generated)
    assert dynamic is not None
    visitor = seeded.test_client()
    assert open_link(visitor, dynamic[0], site=SITE).status_code == 303
    assert "bruno@example.com" in visitor.get("/portal/").text


def test_a_portal_customer_is_no_staff_and_staff_are_no_customers(
    seeded: Flask, client: FlaskClient
) -> None:
    """Z3: each login opens only its own side of the store."""
    public_id = sign_in_as(seeded, client, "ana@example.com")
    assert client.get("/staff/").status_code == 302
    assert client.get(f"/staff/customers/{public_id}").status_code == 302
    invite = f"/portal/staff/test/acme/customers/{public_id}/invite"
    assert client.get(invite).status_code == 302

    staff = seeded.test_client()
    sign_in(staff)
    assert staff.get("/staff/").status_code == 200
    # The portal sees no customer: it sends the staff member to its own sign-in page.
    portal_home = staff.get("/portal/")
    assert portal_home.status_code == 302 and "/login" in portal_home.location


def test_ana_sees_twelve_paid_invoices_and_downloads_one(
    seeded: Flask, client: FlaskClient
) -> None:
    """The demo's billing history: twelve paid invoices, each with a PDF that says what it is."""
    import io

    from pypdf import PdfReader

    sign_in_as(seeded, client, "ana@example.com")
    page = client.get("/portal/billing", query_string={"status": "paid"}).text
    numbers = re.findall(r'href="/portal/billing/invoices/(in_\w+)"', page)
    assert len(set(numbers)) == 12
    invoice_page = client.get(f"/portal/billing/invoices/{numbers[0]}").text
    number = re.search(r"ACME\w*-TEST-\d{6}", invoice_page)
    assert number is not None
    pdf = client.get(f"/portal/billing/invoices/{numbers[0]}.pdf")
    assert pdf.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    # Ana reads Brazilian Portuguese: her money looks like "US$ 29,00", her invoice is "PAGA".
    assert number[0] in text and "US$ 29,00" in text and "Ana Souza" in text and "PAGA" in text


def test_carla_finds_her_cancelled_plan_among_the_past_ones(
    seeded: Flask, client: FlaskClient
) -> None:
    sign_in_as(seeded, client, "carla@example.com")
    page = client.get("/portal/subscriptions").text
    past = page[page.index('id="cp-past-title"') :]
    assert "Cancelada" in past  # Carla reads Brazilian Portuguese


def test_a_cyrillic_name_renders_in_the_pdf(seeded: Flask, client: FlaskClient) -> None:
    import io

    from pypdf import PdfReader

    with seeded.app_context():
        anna = db.session.scalars(select(Customer).where(Customer.name.like("%Анна%"))).first()
        assert anna is not None
        invoice = db.session.scalars(select(Invoice).filter_by(customer_id=anna.id)).first()
        email = anna.email
    assert invoice is not None
    sign_in_as(seeded, client, email)
    pdf = client.get(f"/portal/billing/invoices/{invoice.public_id}.pdf")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Анна" in text


def test_the_store_wraps_the_portal_in_its_layout_and_overrides_a_page(
    client: FlaskClient,
) -> None:
    """Theming by template override, as the docs walk through it."""
    login = "/portal/test/login/acme"
    page = client.get(login).text
    assert "back to the store" in page and 'class="acme-portal-home"' in page
    sent = client.post(
        login, data={"csrf_token": csrf_token(page), "email": "nobody@example.com"}
    ).text
    assert "Acme's support answers within one working day" in sent
    assert "a link is on its way" in sent


def test_the_store_runs_on_stripe_with_the_two_variables_of_its_guide(
    seeded: Flask, monkeypatch: pytest.MonkeyPatch, stripe_server: StripeServer
) -> None:
    """docs/example-store.md, "Run it on Stripe": the store's FLASK_* variables make Stripe
    the test mode's provider, so bruno's "Add a card" opens the Stripe.js page for his
    Stripe customer (localstripe stands in for Stripe: the API and Stripe.js addresses)."""
    settings = stripe_server.settings()
    for name in ("SECRET_KEY", "PUBLISHABLE_KEY", "API_BASE", "JS_URL"):
        key = f"CUSTOMER_PORTAL_STRIPE_{name}"
        monkeypatch.setenv(f"FLASK_{key}", settings[key])
    monkeypatch.setenv("FLASK_TESTING", "true")
    monkeypatch.setenv("FLASK_SECRET_KEY", '"test"')
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", seeded.config["SQLALCHEMY_DATABASE_URI"])
    store = create_app()
    with store.app_context():
        bruno = customer("bruno@example.com")
        url = cards.begin_card_setup(bruno, return_url=f"{SITE}/portal/payment-method")
        page = store.test_client().get(urlsplit(url).path)
        assert page.status_code == 200
        assert f'<script src="{stripe_server.js_url}"' in page.text
        assert bruno.external_id is not None and bruno.external_id.startswith("cus_")
        db.engine.dispose()
