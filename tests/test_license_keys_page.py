"""The license keys page: the customer's own keys, masked until revealed (Z1, V2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m

PAGE = "/portal/license-keys"
KEY = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"


def test_every_key_shows_product_status_expiry_and_activations(
    client: FlaskClient, signed_in: m.Customer, session: Session
) -> None:
    """Status in words, the expiry date or "Never expires", "N of M activations"."""
    desktop = portal.issue_license_key(
        signed_in,
        product="Acme Desktop",
        key=KEY,
        expires_at=datetime(2031, 3, 1, tzinfo=UTC),
        activation_limit=3,
    )
    unlimited = portal.issue_license_key(signed_in, product="Acme CLI")
    portal.issue_license_key(
        signed_in,
        product="Acme Legacy",
        expires_at=datetime.now(UTC) - timedelta(days=1),
        activation_limit=1,
    )
    desktop.activations = 2  # as the merchant's licensing system records them
    session.commit()

    page = client.get(PAGE)
    assert page.status_code == 200
    text = " ".join(page.text.split())
    assert "You have 3 license keys." in text
    assert "Acme Desktop" in text and "Acme CLI" in text and "Acme Legacy" in text
    assert "Expires on Mar 1, 2031" in text
    assert "2 of 3 activations" in text
    assert "Never expires" in text and "0 activations, no limit" in text
    assert "0 of 1 activation" in text
    assert re.search(r"Expired on \w+ \d+, \d{4}", text)
    assert '<span class="cp-badge cp-badge-active">Active</span>' in text
    assert '<span class="cp-badge cp-badge-expired">Expired</span>' in text, "past its expiry"
    assert unlimited.key in text


def test_keys_are_masked_until_revealed_and_can_be_copied(
    client: FlaskClient, signed_in: m.Customer
) -> None:
    """The key shows masked; the full key sits in a <details> element (works without
    JavaScript) that the copy button points at."""
    listing = portal.issue_license_key(signed_in, product="Acme Desktop", key=KEY)
    page = client.get(PAGE).text
    assert "ABCDE-•••••-•••••-•••••-WXYZ2" in page
    target = f"cp-key-{listing.public_id}"
    assert re.search(
        rf'<details class="cp-license-reveal">\s*<summary>Show key</summary>\s*'
        rf'<code id="{target}" class="cp-key">{KEY}</code>\s*</details>',
        page,
    )
    assert page.count(KEY) == 1, "the full key appears only inside <details>"
    assert f'data-copy="{target}"' in page
    assert "/static/customer_portal/portal.js" in page


def test_another_customers_keys_never_appear(
    client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    """Z1: keys of another customer of the same business, and of another business, stay out."""
    portal.issue_license_key(signed_in, product="Mine", key="MINE-0000-0001")
    bruno = portal.upsert_customer(business, "bruno@example.com")
    portal.issue_license_key(bruno, product="Bruno's", key="BRUNO-0000-0001")
    other = portal.create_business("Other Co", public_id="other")
    ana_elsewhere = portal.upsert_customer(other, "ana@example.com")
    portal.issue_license_key(ana_elsewhere, product="Elsewhere", key="OTHER-0000-0001")

    page = client.get(PAGE).text
    assert "MINE-0000-0001" in page and "You have 1 license key." in page
    for foreign in ("Bruno", "BRUNO-0000-0001", "Elsewhere", "OTHER-0000-0001"):
        assert foreign not in page


def test_no_keys_gets_a_friendly_page(client: FlaskClient, signed_in: m.Customer) -> None:
    """An empty state instead of an empty list."""
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "You have no license keys yet." in page.text
    assert "<details" not in page.text


def test_a_product_name_with_markup_renders_escaped(
    client: FlaskClient, signed_in: m.Customer
) -> None:
    """V2: an XSS payload in the product name (and the key) is shown as text."""
    payload = "<img src=x onerror=alert(1)>"
    portal.issue_license_key(signed_in, product=payload, key="<b>KEY</b>-12345678")
    page = client.get(PAGE).text
    assert payload not in page and "<b>KEY</b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;KEY&lt;/b&gt;-12345678" in page


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    """The page needs a portal session."""
    assert client.get(PAGE).status_code == 401
