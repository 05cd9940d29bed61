"""Deep links: a portal session that opens one action, and signed-out bookmarks.

``create_portal_session(flow=...)`` and the HTTP API's ``flow`` open a
subscription's payment-method or cancel page, an invoice, or the subscription
on the subscriptions page, right after sign-in; once the action is done the
customer goes to ``return_url``. A page opened while signed out leads to the
sign-in page and, through the emailed link, back to it; only a portal path
ever (no open redirect).
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import access, emails
from flask_customer_portal import models as m
from flask_customer_portal.outbox import local_messages

from .conftest import EXTERNAL_URL, csrf_token, open_link
from .helpers import add_card, form_token, put_on_hold

RETURN_URL = f"{EXTERNAL_URL}/account"
SESSION = "/portal/api/v1/customers/{}/customer-portal/session"
LOOKUP = "/portal/api/v1/customer-portal/session"
LOGIN_PAGE = "/portal/test/login/acme"
LINK = re.compile(re.escape(f"{EXTERNAL_URL}{LOGIN_PAGE}/") + r"[\w-]+\.[\w-]+\.[\w-]+")


@pytest.fixture
def app(local_mail_app: Flask) -> Flask:
    """The portal app, its mail kept in memory."""
    return local_mail_app


@pytest.fixture
def other(business: m.Business) -> m.Customer:
    """Another customer of the same business, with a subscription and an invoice."""
    bruno = portal.upsert_customer(business, "bruno@example.com", name="Bruno")
    portal.start_subscription(bruno, product="Acme Cloud", plan="Pro", price=2900, currency="USD")
    return bruno


@pytest.fixture
def api_key(business: m.Business) -> str:
    raw, _ = portal.create_api_key(business, "test")
    return raw


def _invoice(customer: m.Customer) -> m.Invoice:
    """An open invoice of the customer's (a failed renewal of their first subscription)."""
    return put_on_hold(next(iter(customer.subscriptions)))[0]


def test_each_flow_lands_on_its_page_after_the_link_is_opened(
    client: FlaskClient, customer: m.Customer, subscription: m.Subscription
) -> None:
    """T3, T7, Z1: the link opens once and, after sign-in, 303s to the flow's page (no token)."""
    sub = subscription.public_id
    invoice = _invoice(customer).public_id
    expected = {
        "update_payment_method": (
            {"subscription_id": sub},
            f"/portal/subscriptions/{sub}/payment-method",
        ),
        "cancel": ({"subscription_id": sub}, f"/portal/subscriptions/{sub}/cancel"),
        "change_plan": ({"subscription_id": sub}, f"/portal/subscriptions#{sub}"),
        "pay_invoice": ({"invoice_id": invoice}, f"/portal/billing/invoices/{invoice}"),
    }
    for flow, (target, page) in expected.items():
        link = portal.create_portal_session(customer, flow=flow, **target)
        assert "portal/" not in link.url.split("/login/")[1].split("/", 2)[-1]
        opened = open_link(client, link.url)
        assert opened.status_code == 303 and opened.headers["Location"] == page, flow
        landed = client.get(page.split("#")[0])
        assert landed.status_code == 200, flow
        if flow == "change_plan":
            assert f'id="{sub}"' in landed.text


def test_a_target_of_another_customer_is_refused_by_the_data_api(
    customer: m.Customer, subscription: m.Subscription, other: m.Customer
) -> None:
    """Z1: a subscription or invoice of another customer is refused like an unknown one, and
    no link is made; so are a flow without its record and an unknown flow."""
    theirs = next(iter(other.subscriptions))
    cases = [
        ({"flow": "cancel", "subscription_id": theirs.public_id}, "subscription_id"),
        ({"flow": "cancel", "subscription_id": "sub_unknown"}, "subscription_id"),
        ({"flow": "pay_invoice", "invoice_id": _invoice(other).public_id}, "invoice_id"),
        ({"flow": "cancel"}, "subscription_id"),
        ({"flow": "pay_invoice", "subscription_id": subscription.public_id}, "subscription_id"),
        ({"flow": "refund", "subscription_id": subscription.public_id}, "flow"),
        ({"subscription_id": subscription.public_id}, "flow"),
    ]
    for options, field in cases:
        with pytest.raises(portal.ValidationError) as refused:
            portal.create_portal_session(customer, **options)
        assert refused.value.field == field, options
        assert theirs.public_id not in refused.value.message


def test_the_http_api_opens_a_flow_on_both_routes_and_refuses_another_customers_target(
    client: FlaskClient,
    customer: m.Customer,
    subscription: m.Subscription,
    other: m.Customer,
    api_key: str,
) -> None:
    """Z1, T13: both session routes take flow and its id (query or body); another customer's
    record is a 404 naming the field, the same as an unknown id; an unknown flow is a 400."""
    headers = {"Authorization": f"Bearer {api_key}"}
    theirs = next(iter(other.subscriptions)).public_id
    routes = [
        (SESSION.format(customer.public_id), {}),
        (LOOKUP, {"email": customer.email}),
    ]
    for path, body in routes:
        answer = client.post(
            path,
            json={**body, "flow": "cancel", "subscription_id": subscription.public_id},
            headers=headers,
        )
        assert answer.status_code == 200, answer.json
        query = client.post(
            path + f"?flow=update_payment_method&subscription_id={subscription.public_id}",
            json=body or None,
            headers=headers,
        )
        assert query.status_code == 200, query.json
        for target in (theirs, "sub_unknown"):
            refused = client.post(
                path, json={**body, "flow": "cancel", "subscription_id": target}, headers=headers
            )
            assert refused.status_code == 404, refused.json
            assert list(refused.json["errors"]) == ["subscription_id"]
            assert theirs not in refused.get_data(as_text=True)
        unknown = client.post(
            path, json={**body, "flow": "refund", "subscription_id": target}, headers=headers
        )
        assert unknown.status_code == 400 and list(unknown.json["errors"]) == ["flow"]
    link = client.post(
        SESSION.format(customer.public_id),
        json={"flow": "cancel", "subscription_id": subscription.public_id},
        headers=headers,
    ).json["link"]
    opened = open_link(client, link)
    assert opened.headers["Location"] == f"/portal/subscriptions/{subscription.public_id}/cancel"


def test_after_the_action_the_customer_returns_to_return_url(
    client: FlaskClient, session: Session, customer: m.Customer, subscription: m.Subscription
) -> None:
    """C1, Z1: cancelling from a deep link goes to return_url; without one, to the overview;
    the same page opened by itself goes back to the subscriptions page as before."""
    link = portal.create_portal_session(
        customer, flow="cancel", subscription_id=subscription.public_id, return_url=RETURN_URL
    )
    page = open_link(client, link.url).headers["Location"]
    done = client.post(page, data={"csrf_token": form_token(client, page), "when": "period_end"})
    assert done.status_code == 303 and done.headers["Location"] == RETURN_URL
    session.refresh(subscription)
    portal.undo_cancellation(subscription)
    # Again, from the subscriptions page this time: the flow is over.
    again = client.post(page, data={"csrf_token": form_token(client, page), "when": "period_end"})
    assert again.headers["Location"] == "/portal/subscriptions"
    session.refresh(subscription)
    portal.undo_cancellation(subscription)

    link = portal.create_portal_session(
        customer, flow="cancel", subscription_id=subscription.public_id
    )
    page = open_link(client, link.url).headers["Location"]
    done = client.post(page, data={"csrf_token": form_token(client, page), "when": "period_end"})
    assert done.headers["Location"] == "/portal/"
    assert "will end on" in client.get("/portal/").text


def test_paying_an_on_hold_subscription_from_a_deep_link_returns_to_return_url(
    client: FlaskClient, session: Session, customer: m.Customer, subscription: m.Subscription
) -> None:
    """P3, T12, Z1: a deep link to the payment method of an on-hold subscription; paying the
    dues with a saved card sends the customer to return_url."""
    put_on_hold(subscription)
    card = add_card(customer, "4242424242424242")
    link = portal.create_portal_session(
        customer,
        flow="update_payment_method",
        subscription_id=subscription.public_id,
        return_url=RETURN_URL,
    )
    page = open_link(client, link.url).headers["Location"]
    form = client.get(page).text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form)
    assert key is not None
    paid = client.post(
        page,
        data={
            "csrf_token": csrf_token(form),
            "payment_method": card.public_id,
            "idempotency_key": key.group(1),
        },
    )
    assert paid.status_code == 303 and paid.headers["Location"] == RETURN_URL
    session.refresh(subscription)
    assert subscription.status == "active"


def _emailed_link(app: Flask) -> str:
    with app.app_context():
        emails.send_queued()
    found = LINK.search(local_messages()[0]["text"])
    assert found is not None
    return found.group(0)


def test_a_signed_out_bookmark_leads_to_sign_in_and_back_through_the_emailed_link(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """T2, T3, T6, V1: /portal/billing opened signed out goes to the sign-in page, which keeps
    the page; the emailed link (its token single-use, the page stored with it on the server,
    not in the URL) opens it after sign-in."""
    bookmark = client.get("/portal/billing?status=paid")
    assert bookmark.status_code == 302
    login = bookmark.headers["Location"]
    assert login.startswith(LOGIN_PAGE + "?")
    page = client.get(login)
    assert 'name="next" value="/portal/billing?status=paid"' in page.text
    sent = client.post(
        login,
        data={
            "csrf_token": csrf_token(page.text),
            "email": customer.email,
            "next": "/portal/billing?status=paid",
        },
    )
    assert sent.status_code == 200
    link = _emailed_link(app)
    assert "billing" not in link
    opened = open_link(client, link)
    assert opened.status_code == 303
    assert opened.headers["Location"] == "/portal/billing?status=paid"
    assert client.get(opened.headers["Location"]).status_code == 200
    again = client.post(
        link.removeprefix(EXTERNAL_URL), data={"csrf_token": form_token(client, "/portal/")}
    )
    assert again.status_code == 410


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.net/portal/billing",
        "//evil.example.net/portal/billing",
        "/\\evil.example.net/portal/billing",
        "/portal\\..\\admin",
        "/admin",
        "/portal",
        "/portalx/billing",
        "/portal/../admin",
        "/portal/%2e%2e/admin",
        "/portal/%2F%2Fevil.example.net",
        "javascript:alert(1)",
        "/portal/billing\r\nLocation: https://evil.example.net",
    ],
)
def test_open_redirect_attempts_are_refused(
    app: Flask, client: FlaskClient, customer: m.Customer, target: str
) -> None:
    """V1: a next page that is not a portal path is dropped from the sign-in form, refused by
    the data API, and the emailed link opens the overview."""
    clean = client.get(LOGIN_PAGE).text.count('name="next"')  # the language switcher's
    page = client.get(LOGIN_PAGE, query_string={"next": target})
    assert page.text.count('name="next"') == clean
    with pytest.raises(portal.ValidationError):
        access.request_login_link(customer.business, "test", customer.email, next_path=target)
    client.post(
        LOGIN_PAGE,
        data={"csrf_token": csrf_token(page.text), "email": customer.email, "next": target},
    )
    opened = open_link(client, _emailed_link(app))
    assert opened.headers["Location"] == "/portal/"
