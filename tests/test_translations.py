"""Translations: complete catalogues, the reader's language, the switcher, mail and PDFs.

The portal speaks English, Brazilian Portuguese and Spanish. A page is read in
the signed-in customer's saved language, else the browser's, else the
business's default; money and dates follow the same locale.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from flask_babel import Babel, force_locale, get_locale
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import CustomerPortal, emails, payments
from flask_customer_portal import models as m

from .conftest import csrf_token, host_app, local_mail_app, provider_of, sign_in_with_link
from .helpers import PAYMENT_RETURN_URL, SUCCEEDS, add_card, pdf_text, shown

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "flask_customer_portal"
TRANSLATIONS = PACKAGE / "translations"
LOCALES = ("pt_BR", "es")
LOGIN = "/portal/test/login/acme"
PORTUGUESE = {"Accept-Language": "pt-BR,pt;q=0.9"}
SPANISH = {"Accept-Language": "es"}


app = local_mail_app  # keeps sent mail on a local page to read it


def catalogue(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / "customer_portal.po"


def extracted_ids() -> set[str]:
    """Extract the messages of the package afresh, as ``pybabel extract -F babel.cfg`` does."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    found = extract_from_dir(PACKAGE, method_map, options_map, keywords=keywords)
    return {message if isinstance(message, str) else message[0] for *_, message, _, _ in found}


@pytest.mark.parametrize("locale", LOCALES)
def test_each_catalogue_translates_every_message_of_a_fresh_extraction(locale: str) -> None:
    """Every message is translated, none is fuzzy, the placeholders match, the catalogue
    holds exactly what the code and templates ask for, and the shipped .mo is compiled from it."""
    with open(catalogue(locale), "rb") as po:
        messages = read_po(po, locale=locale)
    assert not messages.fuzzy, "the catalogue's header is fuzzy"
    untranslated, fuzzy = [], []
    for message in messages:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert untranslated == [] and fuzzy == []
    problems = [(message.id, errors) for message, errors in messages.check()]
    assert problems == []
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in messages if m.id}
    fresh = extracted_ids()
    assert fresh - ids == set(), "messages not in the catalogue: run pybabel extract and update"
    assert ids - fresh == set(), "messages no longer used: run pybabel update"
    with open(catalogue(locale).with_suffix(".mo"), "rb") as mo:
        compiled = read_mo(mo)
    assert texts(compiled) == texts(messages), "the .mo is stale: run pybabel compile"


def texts(messages: Catalog) -> dict[object, object]:
    def key(value: object) -> object:
        return tuple(value) if isinstance(value, list | tuple) else value

    return {key(m.id): key(m.string) for m in messages if m.id}


def page_language(client: FlaskClient, path: str = "/portal/", **headers: str) -> str:
    page = client.get(path, headers=headers)
    assert page.status_code == 200, page.text
    return page.text.split('<html lang="', 1)[1].split('"', 1)[0]


def test_the_saved_preference_beats_the_browser_which_beats_the_business_default(
    client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    """The locale order: Customer.locale, Accept-Language, the business's default, English."""
    assert page_language(client) == "en"
    assert page_language(client, **{"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}) == "es"
    portal.update_business(business, default_locale="pt_BR")
    assert page_language(client) == "pt-BR"
    assert page_language(client, **{"Accept-Language": "de-DE,de"}) == "pt-BR", "unsupported"
    assert page_language(client, **{"Accept-Language": "en-GB"}) == "en"
    portal.upsert_customer(business, signed_in.email, locale="es")
    assert page_language(client, **{"Accept-Language": "pt-BR"}) == "es"
    page = client.get("/portal/", headers={"Accept-Language": "pt-BR"}).text
    assert "Hola, Ana Souza" in page and "Tus suscripciones" in page


def test_pages_outside_the_portal_keep_the_default_locale(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """The portal's choice applies to its own pages only; the host's get BABEL_DEFAULT_LOCALE."""
    app.add_url_rule("/host", "host", lambda: str(get_locale()))
    sign_in_with_link(client, customer)
    assert client.get("/host", headers=SPANISH).text == "en"
    assert page_language(client, **SPANISH) == "es"


def test_the_switcher_saves_a_signed_in_customers_choice(
    client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    """A form in the footer (no JavaScript): the choice lands on the customer's record."""
    page = client.get("/portal/subscriptions").text
    assert 'action="/portal/language"' in page and '<option value="en" lang="en" selected>' in page
    response = client.post(
        "/portal/language",
        data={"csrf_token": csrf_token(page), "locale": "pt_BR", "next": "/portal/subscriptions"},
    )
    assert response.status_code == 303 and response.location == "/portal/subscriptions"
    session.refresh(signed_in)
    assert signed_in.locale == "pt_BR"
    page = client.get("/portal/subscriptions", headers={"Accept-Language": "es"}).text
    assert '<html lang="pt-BR"' in page and '<h1 class="cp-page-title">Assinaturas</h1>' in page
    assert '<option value="pt_BR" lang="pt-BR" selected>' in page


def test_the_switcher_refuses_other_languages_other_sites_and_missing_tokens(
    client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    """C1: the switcher's POST needs the CSRF token; it never redirects off the site."""
    token = csrf_token(client.get("/portal/").text)
    refused = client.post("/portal/language", data={"csrf_token": token, "locale": "xx"})
    assert refused.status_code == 400 and "Choose a language from the list." in refused.text
    for elsewhere in ("https://evil.example", "//evil.example/", "/\\evil.example", "portal"):
        response = client.post(
            "/portal/language", data={"csrf_token": token, "locale": "es", "next": elsewhere}
        )
        assert response.status_code == 303 and response.location == "/portal/", elsewhere
    forged = client.post("/portal/language", data={"locale": "pt_BR"}, headers=SPANISH)
    assert forged.status_code == 400 and "Este formulario caducó" in forged.text
    session.refresh(signed_in)
    assert signed_in.locale == "es"


def test_the_switcher_works_on_the_login_page_for_a_visitor(
    client: FlaskClient, customer: m.Customer, session: Session
) -> None:
    """Not signed in, the choice is kept in the browser's session, nothing is saved."""
    page = client.get(LOGIN).text
    assert '<html lang="en"' in page and "Sign in to your Acme Cloud account" in page
    response = client.post(
        "/portal/language", data={"csrf_token": csrf_token(page), "locale": "pt_BR", "next": LOGIN}
    )
    assert response.status_code == 303 and response.location == LOGIN
    page = client.get(LOGIN, headers={"Accept-Language": "es"}).text
    assert '<html lang="pt-BR"' in page and "Entre na sua conta Acme Cloud" in page
    assert "Enviar link de acesso por e-mail" in page
    session.refresh(customer)
    assert customer.locale is None


def test_the_overview_in_portuguese_shows_reais_and_portuguese_dates(
    client: FlaskClient, signed_in: m.Customer, business: m.Business, session: Session
) -> None:
    """Money, dates and words all follow the page's locale: R$ 1.234,56; 25 de nov. de 2026."""
    portal.upsert_customer(business, signed_in.email, locale="pt_BR")
    subscription = portal.start_subscription(
        signed_in, product="Acme Cloud", plan="Pro", price=123456, currency="BRL"
    )
    subscription.next_billing_at = datetime(2026, 11, 25, 12, tzinfo=UTC)
    session.commit()
    page = shown(client.get("/portal/").text)
    assert "R$ 1.234,56 a cada mês" in page
    assert "Renova em 25 de nov. de 2026" in page
    assert "Olá, Ana Souza" in page and "Você tem 0 chave de licença." in page
    assert '<span class="cp-badge cp-badge-active">Ativa</span>' in page


def test_values_in_translated_messages_are_escaped(
    client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    """V2: a translated message is the catalogue's markup; every value put in it is escaped."""
    portal.upsert_customer(business, signed_in.email, name='<script>alert("x")</script>')
    page = client.get("/portal/", headers=PORTUGUESE).text
    assert "<script>alert" not in page
    assert "Olá, &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_plural_forms_follow_each_language(client: FlaskClient, signed_in: m.Customer) -> None:
    """ngettext with each language's rule: Portuguese counts 0 as one, Spanish as many."""
    assert "Você tem 0 chave de licença." in client.get("/portal/", headers=PORTUGUESE).text
    assert "Tienes 0 claves de licencia." in client.get("/portal/", headers=SPANISH).text
    portal.issue_license_key(signed_in, product="Acme CLI")
    assert "Tienes 1 clave de licencia." in client.get("/portal/license-keys", headers=SPANISH).text
    portal.issue_license_key(signed_in, product="Acme Desktop")
    page = client.get("/portal/license-keys", headers=PORTUGUESE).text
    assert "Você tem 2 chaves de licença." in page


def test_mail_to_a_portuguese_customer_is_in_portuguese(
    client: FlaskClient, business: m.Business
) -> None:
    """Mail is rendered when it is sent, in the customer's language, not the requester's."""
    portal.upsert_customer(business, "ana@example.com", name="Ana Souza", locale="pt_BR")
    portal.upsert_customer(business, "bob@example.com", name="Bob")
    for email in ("ana@example.com", "bob@example.com"):
        token = csrf_token(client.get(LOGIN).text)
        sent = client.post(
            LOGIN, data={"csrf_token": token, "email": email}, headers={"Accept-Language": "es"}
        )
        assert "Revisa tu correo" in sent.text
    assert emails.send_queued() == (2, 0)
    bob, ana = portal.local_messages()
    assert ana["recipient"] == "ana@example.com"
    assert ana["subject"] == "Seu link de acesso para Acme Cloud"
    assert ana["text"].startswith("Olá, Ana Souza,\n\nAqui está seu link para entrar")
    assert '<html lang="pt-BR">' in ana["html"] and "Entrar em Acme Cloud" in ana["html"]
    assert "durante os próximos 30 minutos" in ana["text"]
    assert bob["subject"] == "Your sign-in link for Acme Cloud"
    assert bob["text"].startswith("Hello Bob,") and '<html lang="en">' in bob["html"]


def test_a_cancellation_mail_in_spanish_names_the_period_and_money_in_spanish(
    business: m.Business,
) -> None:
    """The lazy subject and period are translated at send time, money and dates formatted alike."""
    customer = portal.upsert_customer(business, "eva@example.com", name="Eva", locale="es")
    subscription = portal.start_subscription(
        customer, product="Acme Cloud", plan="Pro", price=2900, currency="EUR", interval_count=3
    )
    portal.cancel_subscription(subscription, at_period_end=True)
    portal.undo_cancellation(subscription)
    assert emails.send_queued() == (2, 0)
    undone, cancelled = portal.local_messages()
    assert cancelled["subject"].startswith("Tu suscripción Acme Cloud Pro termina el ")
    assert shown(undone["text"]).startswith("Hola, Eva:")
    assert "por 29,00 € cada 3 meses." in shown(undone["text"])
    assert undone["subject"] == "Tu suscripción Acme Cloud Pro continúa"


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("en", ("INVOICE", "Bill to", "Unit price", "Subtotal", "Total (EUR)", "PAID")),
        ("es", ("FACTURA", "Facturar a", "Precio unitario", "Impuestos", "Total (EUR)", "PAGADA")),
        ("pt_BR", ("FATURA", "Faturar para", "Preço unitário", "Impostos", "Total (EUR)", "PAGA")),
    ],
)
def test_the_pdf_labels_follow_the_locale(
    client: FlaskClient, signed_in: m.Customer, locale: str, words: tuple[str, ...]
) -> None:
    """The renderer gets the page's locale: its words, money and dates follow it."""
    issued = datetime(2026, 11, 25, 9, tzinfo=UTC)
    invoice = portal.issue_invoice(
        signed_in,
        [{"description": "Acme Cloud Pro", "unit_amount": 123456}],
        currency="EUR",
        issued_at=issued,
        due_at=issued + timedelta(days=10),
    )
    portal.record_payment(signed_in, invoice=invoice, amount=invoice.total, currency="EUR")
    language = locale.replace("_", "-")
    response = client.get(
        f"/portal/billing/invoices/{invoice.public_id}.pdf", headers={"Accept-Language": language}
    )
    text = pdf_text(response.data)
    for word in words:
        assert word in text, word
    if locale == "pt_BR":
        assert "Emitida: 25 de nov. de 2026" in text and "€ 1.234,56" in text


def test_a_host_with_its_own_babel_keeps_it(database_url: str, tmp_path: Path) -> None:
    """Registered first, the host's Flask-Babel stays the host's: its selector rules its pages
    and its templates keep their own gettext, while the portal's pages follow the customer."""
    app = host_app(database_url, tmp_path)
    host_babel = Babel(app, locale_selector=lambda: "es")
    CustomerPortal(app)
    app.add_url_rule(
        "/host", "host", lambda: render_template_string("{{ _('Sign out') }}|") + str(get_locale())
    )
    assert app.extensions["babel"].instance is host_babel
    try:
        with app.app_context():
            business = portal.create_business("Acme Cloud", public_id="acme")
            customer = portal.upsert_customer(business, "ana@example.com", locale="pt_BR")
            client = app.test_client()
            assert client.get("/host").text == "Sign out|es", "the host's selector and gettext"
            assert '<html lang="en"' in client.get(LOGIN).text, "the business's default"
            assert '<html lang="pt-BR"' in client.get(LOGIN, headers=PORTUGUESE).text
            sign_in_with_link(client, customer)
            assert '<html lang="pt-BR"' in client.get("/portal/").text
    finally:
        app.extensions["customer_portal"].engine.dispose()


def test_invoice_text_is_written_in_the_customers_language_whoever_reads_the_page(
    app: Flask, business: m.Business, customer: m.Customer
) -> None:
    """Documents are written once: the lines the portal writes for a failed renewal and for
    paying the dues, and the charge's description, are in the customer's language (here their
    business's), never in the language of the page that happened to cause them."""
    portal.update_business(business, default_locale="pt_BR")
    subscription = portal.start_subscription(
        customer,
        product="Acme Cloud",
        plan="Pro",
        price=2900,
        currency="EUR",
        start=datetime(2026, 10, 5, 9, tzinfo=UTC),
    )
    with force_locale("es"):  # a page read in Spanish
        renewal = portal.record_failed_renewal(subscription, reason="Your card was declined.")
        card = add_card(customer, SUCCEEDS)
        outcome = payments.change_payment_method(
            subscription, card, idempotency_key="key-1", return_url=PAYMENT_RETURN_URL
        )
    (line,) = renewal.lines
    assert line.description == "Acme Cloud Pro (5 de nov. de 2026 – 5 de dez. de 2026)"
    assert outcome.status == "succeeded" and outcome.invoice is not None
    (paid,) = outcome.invoice.lines
    assert paid.description == f"Fatura {renewal.number}: {line.description}"
    charge = provider_of(app).charges["key-1"]
    assert charge.description == f"Acme Cloud Acme Cloud Pro: fatura {outcome.invoice.number}"
