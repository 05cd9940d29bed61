"""The HTTP API for merchants' backends: creating portal sessions over HTTP."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf.csrf import CSRFProtect
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.test import TestResponse

import flask_customer_portal as portal
from flask_customer_portal import CustomerPortal
from flask_customer_portal import models as m

from .conftest import EXTERNAL_URL, csrf_token, single_use_id
from .helpers import stored_rows

API = "/portal/api/v1"


def session_path(customer_id: str) -> str:
    return f"{API}/customers/{customer_id}/customer-portal/session"


def create_session(
    client: FlaskClient, customer_id: str, key: str | None, **kwargs: Any
) -> TestResponse:
    """POST to the session route with ``key`` as the bearer key (none when ``None``)."""
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.post(session_path(customer_id), headers=headers, **kwargs)


def assert_error(response: TestResponse, code: int) -> dict[str, Any]:
    """Check the one JSON error shape of the API and return the body."""
    assert response.status_code == code, response.text
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"code", "status", "message", "errors"}
    assert body["code"] == code
    assert body["status"] == HTTP_STATUS_CODES[code]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    for messages in body["errors"].values():
        assert isinstance(messages, list) and all(isinstance(text, str) for text in messages)
    assert "<!doctype" not in response.text.lower() and "Traceback" not in response.text
    return body


@pytest.fixture
def api_key(business: m.Business) -> str:
    """A test-mode API key of the customer's business."""
    raw, _ = portal.create_api_key(business, "test", name="backend")
    return raw


@pytest.fixture
def other_business() -> m.Business:
    return portal.create_business("Globex", public_id="globex")


def test_a_session_is_a_link_at_the_external_url_for_24_hours(
    client: FlaskClient, customer: m.Customer, api_key: str
) -> None:
    """T13, T4: 200 with a link built from EXTERNAL_URL, expiring 24 h from now."""
    response = create_session(client, customer.public_id, api_key)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"link", "expires_at"}
    assert body["link"].startswith(f"{EXTERNAL_URL}/portal/test/login/acme/")
    assert body["expires_at"].endswith(("Z", "+00:00"))
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.utcoffset() == timedelta(0)
    assert abs(expires_at - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)


def test_the_link_opens_the_portal_once(
    client: FlaskClient, customer: m.Customer, api_key: str
) -> None:
    """T3, T6: the link shows "Continue"; one POST signs in (303 to /portal/), the next is 410."""
    link = create_session(client, customer.public_id, api_key).get_json()["link"]
    path = link.removeprefix(EXTERNAL_URL)

    page = client.get(path)
    assert page.status_code == 200
    assert "Continue to your account" in page.text
    opened = client.post(path, data={"csrf_token": csrf_token(page.text)})
    assert opened.status_code == 303
    assert opened.headers["Location"] == "/portal/"
    assert "ana@example.com" in client.get("/portal/").text

    again = client.post(path, data={"csrf_token": csrf_token(client.get(path).text)})
    assert again.status_code == 410


def test_missing_malformed_wrong_and_revoked_keys_get_the_same_401(
    client: FlaskClient, customer: m.Customer, business: m.Business
) -> None:
    """T13: one status, body and headers whatever is wrong with the key."""
    revoked, key_row = portal.create_api_key(business, "test")
    assert portal.revoke_api_key(key_row.public_id)
    cases: dict[str, dict[str, str]] = {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "other scheme": {"Authorization": "Basic YWNtZTpzZWNyZXQ="},
        "no scheme": {"Authorization": revoked},
        "wrong": {"Authorization": "Bearer cp_test_" + "x" * 43},
        "revoked": {"Authorization": f"Bearer {revoked}"},
    }
    answers = {}
    for case, headers in cases.items():
        response = client.post(session_path(customer.public_id), headers=headers)
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        answers[case] = (
            response.status_code,
            response.data,
            sorted((k, v) for k, v in response.headers.items() if k != "Date"),
        )
    assert len(set(map(repr, answers.values()))) == 1, answers


def test_the_key_is_read_from_the_authorization_header_only(
    client: FlaskClient, customer: m.Customer, api_key: str
) -> None:
    """T13: a key in the query string, the body or a cookie opens nothing."""
    missing = create_session(client, customer.public_id, None)
    for name in ("api_key", "key", "access_token"):
        in_query = client.post(f"{session_path(customer.public_id)}?{name}={api_key}")
        in_body = client.post(session_path(customer.public_id), json={name: api_key})
        for response in (in_query, in_body):
            assert_error(response, 401)
            assert response.data == missing.data
    client.set_cookie("api_key", api_key)
    assert create_session(client, customer.public_id, None).data == missing.data


def test_a_key_reaches_only_its_own_business_and_mode(
    client: FlaskClient,
    business: m.Business,
    other_business: m.Business,
    customer: m.Customer,
    api_key: str,
) -> None:
    """T13, Z1: another business's customer, or the other mode's, is 404 like no customer."""
    live_ana = portal.upsert_customer(business, "ana@example.com", mode="live")
    globex_ana = portal.upsert_customer(other_business, "ana@example.com")
    live_key, _ = portal.create_api_key(business, "live")
    globex_key, _ = portal.create_api_key(other_business, "test")

    unknown = assert_error(create_session(client, "cus_" + "0" * 20, api_key), 404)
    assert "cus_" + "0" * 20 in unknown["message"]
    for customer_id, key in (
        (globex_ana.public_id, api_key),
        (live_ana.public_id, api_key),
        (customer.public_id, live_key),
        (customer.public_id, globex_key),
    ):
        assert_error(create_session(client, customer_id, key), 404)

    live_link = create_session(client, live_ana.public_id, live_key).get_json()["link"]
    assert live_link.startswith(f"{EXTERNAL_URL}/portal/login/acme/")
    globex_link = create_session(client, globex_ana.public_id, globex_key).get_json()["link"]
    assert globex_link.startswith(f"{EXTERNAL_URL}/portal/test/login/globex/")


# -- Sessions by external id or email -------------------------------------------------------

LOOKUP = f"{API}/customer-portal/session"


def lookup_session(client: FlaskClient, key: str | None, **kwargs: Any) -> TestResponse:
    """POST to the sibling session route, which finds the customer from the JSON body."""
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.post(LOOKUP, headers=headers, **kwargs)


def test_a_session_by_external_id_or_email_opens_that_customer_s_portal(
    client: FlaskClient, customer: m.Customer, api_key: str, session: Session
) -> None:
    """T13, T3: the same answer as by cus_ id; the link signs in the customer it names."""
    portal.upsert_customer(customer.business, "bruno@example.com", external_id="user_2")
    portal.set_external_id(customer, "user_1")
    for body in ({"external_id": "user_1"}, {"email": " ANA@example.com"}):
        response = lookup_session(client, api_key, json=body)
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store"
        answer = response.get_json()
        assert set(answer) == {"link", "expires_at"}
        assert answer["link"].startswith(f"{EXTERNAL_URL}/portal/test/login/acme/")
        reader = client.application.test_client()
        path = answer["link"].removeprefix(EXTERNAL_URL)
        page = reader.get(path)
        assert reader.post(path, data={"csrf_token": csrf_token(page.text)}).status_code == 303
        home = reader.get("/portal/").text
        assert "ana@example.com" in home and "bruno@example.com" not in home
    # The other parameters as on the cus_ route: in the body, or in the query string.
    mailed = lookup_session(
        client,
        api_key,
        json={"external_id": "user_2", "send_email": True},
        query_string={"return_url": f"{EXTERNAL_URL}/account"},
    )
    assert mailed.status_code == 200
    rows = session.execute(sa.select(m.OutboxMessage.kind, m.OutboxMessage.recipient))
    assert [tuple(row) for row in rows] == [("portal_link", "bruno@example.com")]


def test_an_unknown_customer_by_external_id_or_email_is_one_404(
    client: FlaskClient,
    business: m.Business,
    other_business: m.Business,
    customer: m.Customer,
    api_key: str,
) -> None:
    """T13, Z1: unknown, another business's and the other mode's customer get the same 404."""
    portal.upsert_customer(business, "live@example.com", mode="live", external_id="user_live")
    portal.upsert_customer(other_business, "globex@example.com", external_id="user_globex")
    for field, values in (
        ("external_id", ["nobody", "user_live", "user_globex", "x" * 255, "  ", "a\x00b"]),
        ("email", ["nobody@example.com", "live@example.com", "globex@example.com", "nope"]),
    ):
        answers = [
            assert_error(lookup_session(client, api_key, json={field: v}), 404) for v in values
        ]
        assert {answer["message"] for answer in answers} == {
            f"No customer with this {field} in this API key's business and mode."
        }
        assert not any("example.com" in answer["message"] for answer in answers)


def test_each_mode_s_key_reaches_its_own_customer_with_the_same_external_id(
    client: FlaskClient, business: m.Business, customer: m.Customer, api_key: str
) -> None:
    """T13: the same external id in test and live mode names two customers, each key its own."""
    portal.set_external_id(customer, "user_1")
    live = portal.upsert_customer(
        business, "ana.live@example.com", mode="live", external_id="user_1"
    )
    live_key, _ = portal.create_api_key(business, "live")
    test_link = lookup_session(client, api_key, json={"external_id": "user_1"}).get_json()["link"]
    live_link = lookup_session(client, live_key, json={"external_id": "user_1"}).get_json()["link"]
    assert test_link.startswith(f"{EXTERNAL_URL}/portal/test/login/acme/")
    assert live_link.startswith(f"{EXTERNAL_URL}/portal/login/acme/")
    # The live key cannot reach the test customer by its email either.
    assert_error(lookup_session(client, live_key, json={"email": "ana@example.com"}), 404)
    assert live.mode == "live"


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({}, {"external_id", "email"}),
        ({"json": {}}, {"external_id", "email"}),
        ({"json": {"send_email": True}}, {"external_id", "email"}),
        ({"json": {"external_id": "user_1", "email": "ana@example.com"}}, {"external_id", "email"}),
        (
            {"query_string": {"external_id": "user_1"}},
            {"external_id", "email"},
        ),
        (
            {"json": {"email": "ana@example.com"}, "query_string": {"external_id": "user_1"}},
            {"external_id"},
        ),
        ({"json": {"external_id": 42}}, {"external_id"}),
        ({"json": {"external_id": ""}}, {"external_id"}),
        ({"json": {"external_id": "x" * 256}}, {"external_id"}),
        ({"json": {"email": None}}, {"email"}),
        ({"json": {"email": "ana@example.com", "customer_id": "cus_1"}}, {"customer_id"}),
        ({"json": {"email": "ana@example.com", "send_email": "yes"}}, {"send_email"}),
    ],
)
def test_neither_both_or_a_bad_identifier_is_a_400_naming_it(
    client: FlaskClient,
    customer: m.Customer,
    api_key: str,
    kwargs: dict[str, Any],
    fields: set[str],
) -> None:
    """V1: exactly one of external_id and email, in the JSON body; nothing else unknown."""
    portal.set_external_id(customer, "user_1")
    body = assert_error(lookup_session(client, api_key, **kwargs), 400)
    assert set(body["errors"]) == fields, body


def test_the_lookup_route_shares_the_key_s_401_and_rate_limit(
    database_url: str,
    app_factory: Callable[..., Flask],
    customer: m.Customer,
    api_key: str,
) -> None:
    """T9, T13: the same 401 as the cus_ route; one budget per key across both routes."""
    limited = app_factory(database_url, CUSTOMER_PORTAL_API_RATE_LIMIT="3 per minute")
    client = limited.test_client()
    by_email = {"json": {"email": "ana@example.com"}}
    assert lookup_session(client, "cp_test_wrong", **by_email).data == (
        create_session(client, customer.public_id, "cp_test_wrong").data
    )
    assert create_session(client, customer.public_id, api_key).status_code == 200
    assert lookup_session(client, api_key, **by_email).status_code == 200
    assert create_session(client, customer.public_id, api_key).status_code == 200
    assert_error(lookup_session(client, api_key, **by_email), 429)
    assert_error(create_session(client, customer.public_id, api_key), 429)


def test_a_spoofed_host_does_not_change_the_link(
    client: FlaskClient, customer: m.Customer, api_key: str
) -> None:
    """T13: links come from CUSTOMER_PORTAL_EXTERNAL_URL, never from the request's Host."""
    response = create_session(
        client,
        customer.public_id,
        api_key,
        base_url="http://evil.example",
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 200
    link = response.get_json()["link"]
    assert link.startswith(f"{EXTERNAL_URL}/portal/test/login/acme/")
    assert "evil" not in link


def test_send_email_queues_the_portal_link_mail(
    client: FlaskClient, customer: m.Customer, api_key: str, session: Session
) -> None:
    """M1: send_email (JSON true, or "true"/"1" in the query) queues one portal_link mail."""

    def queued() -> list[tuple[str, str]]:
        rows = session.execute(sa.select(m.OutboxMessage.kind, m.OutboxMessage.recipient))
        return [tuple(row) for row in rows]

    assert create_session(client, customer.public_id, api_key).status_code == 200
    unsent = create_session(client, customer.public_id, api_key, json={"send_email": False})
    assert unsent.status_code == 200
    assert queued() == []

    response = create_session(client, customer.public_id, api_key, json={"send_email": True})
    assert response.status_code == 200
    assert queued() == [("portal_link", "ana@example.com")]
    for flag in ("true", "1"):
        query = create_session(
            client, customer.public_id, api_key, query_string={"send_email": flag}
        )
        assert query.status_code == 200
    assert len(queued()) == 3
    # The JSON body wins over the query string.
    body_wins = create_session(
        client,
        customer.public_id,
        api_key,
        query_string={"send_email": "true"},
        json={"send_email": False},
    )
    assert body_wins.status_code == 200 and len(queued()) == 3


def test_a_return_url_must_point_to_an_allowed_origin(
    client: FlaskClient, customer: m.Customer, api_key: str
) -> None:
    """V1: return_url only to EXTERNAL_URL's origin or RETURN_URL_ORIGINS; else 400 naming it."""
    bad_urls = [
        "http://evil.example",
        "https://evil.example/account",
        "javascript:alert(1)",
        "//evil.example",
        "https://[",
        f"{EXTERNAL_URL}/\x00",
        f"{EXTERNAL_URL}/" + "a" * 2000,
    ]
    for bad in bad_urls:
        in_query = create_session(
            client, customer.public_id, api_key, query_string={"return_url": bad}
        )
        assert list(assert_error(in_query, 400)["errors"]) == ["return_url"], bad
    # A lone surrogate cannot travel in a URL, only escaped in JSON.
    for bad in [*bad_urls, f"{EXTERNAL_URL}/\ud800", 42]:
        in_body = create_session(client, customer.public_id, api_key, json={"return_url": bad})
        assert list(assert_error(in_body, 400)["errors"]) == ["return_url"], bad

    good = f"{EXTERNAL_URL}/account"
    response = create_session(client, customer.public_id, api_key, json={"return_url": good})
    link = response.get_json()["link"].removeprefix(EXTERNAL_URL)
    page = client.get(link)
    client.post(link, data={"csrf_token": csrf_token(page.text)})
    assert f'href="{good}"' in client.get("/portal/").text


@pytest.mark.parametrize(
    "url",
    [
        f"{EXTERNAL_URL}.evil.example/account",
        f"{EXTERNAL_URL}@evil.example/account",
        f"{EXTERNAL_URL}:8080/account",
        f"{EXTERNAL_URL}evil.example/",
        "https://shop.example.com.evil.example/account",
        "https://shop.example.com@evil.example/account",
        "https://shop.example.com:8443/account",
        "https://shop.example.com%2F@evil.example/",
    ],
)
def test_a_return_url_that_only_starts_like_an_allowed_origin_is_refused(
    database_url: str,
    app_factory: Callable[..., Flask],
    customer: m.Customer,
    api_key: str,
    url: str,
) -> None:
    """V1: the origin is compared whole (scheme, host, port); a look-alike host, a user
    name before "@" or another port leads elsewhere and is refused."""
    shop = app_factory(
        database_url, CUSTOMER_PORTAL_RETURN_URL_ORIGINS=["https://shop.example.com"]
    )
    client = shop.test_client()
    for allowed in (f"{EXTERNAL_URL}/account", "https://shop.example.com/account"):
        accepted = create_session(client, customer.public_id, api_key, json={"return_url": allowed})
        assert accepted.status_code == 200, allowed

    refused = create_session(client, customer.public_id, api_key, json={"return_url": url})

    assert list(assert_error(refused, 400)["errors"]) == ["return_url"]


def test_invalid_requests_get_400_in_the_json_error_shape(
    client: FlaskClient, customer: m.Customer, api_key: str
) -> None:
    """V1: bad JSON, non-boolean send_email and unknown parameters: 400 naming the field."""
    path_id = customer.public_id
    for data in (b"{not json", b"[1, 2]", b'"text"', b'{"send_email": "\xc3\x28"}', b"[" * 5000):
        response = create_session(
            client, path_id, api_key, data=data, content_type="application/json"
        )
        assert_error(response, 400)

    for value in ("maybe", "true", 1, None, [True]):
        body = assert_error(
            create_session(client, path_id, api_key, json={"send_email": value}), 400
        )
        assert list(body["errors"]) == ["send_email"]
    for value in ("maybe", "", "yes"):
        response = create_session(client, path_id, api_key, query_string={"send_email": value})
        assert list(assert_error(response, 400)["errors"]) == ["send_email"]
    twice = create_session(client, path_id, api_key, query_string="send_email=1&send_email=0")
    assert list(assert_error(twice, 400)["errors"]) == ["send_email"]

    both = create_session(
        client, path_id, api_key, json={"send_email": "maybe", "return_url": "http://evil.example"}
    )
    assert sorted(assert_error(both, 400)["errors"]) == ["return_url", "send_email"]
    unknown = create_session(client, path_id, api_key, json={"email": "x@example.com"})
    assert assert_error(unknown, 400)["errors"] == {
        "email": ["is not a parameter of this endpoint"]
    }
    for query in ("send_email=True", "send_email=0", "return_url="):
        assert create_session(client, path_id, api_key, query_string=query).status_code == 200


def test_other_errors_share_the_json_shape(
    client: FlaskClient, customer: m.Customer, api_key: str
) -> None:
    """V1: 404 (unknown path), 405, 413 (a body over 16 KiB) and 415 (not JSON) in one shape."""
    path = session_path(customer.public_id)
    assert_error(client.get(f"{API}/nothing-here"), 404)
    assert_error(client.post(f"{API}/"), 404)
    assert_error(client.get(API), 404)
    for method in ("get", "put", "delete", "patch", "options"):
        response = getattr(client, method)(path)
        assert_error(response, 405)
        assert response.headers["Allow"] == "POST"
    assert client.head(path).status_code == 405
    assert client.post(f"{API}/openapi.json").headers["Allow"] == "GET"

    big = json.dumps({"return_url": "x" * 17 * 1024})
    assert_error(create_session(client, customer.public_id, api_key, data=big), 413)
    assert_error(
        create_session(
            client, customer.public_id, api_key, data=big, content_type="application/json"
        ),
        413,
    )
    form = create_session(client, customer.public_id, api_key, data={"send_email": "true"})
    assert_error(form, 415)
    text = create_session(client, customer.public_id, api_key, data="send_email=true")
    assert_error(text, 415)


def test_a_crash_is_a_generic_json_500(
    empty_database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """V3: a server error (here: a database without the portal's tables) is JSON, no trace."""
    broken = app_factory(empty_database_url, PROPAGATE_EXCEPTIONS=False)
    response = create_session(broken.test_client(), "cus_" + "0" * 20, "cp_test_" + "x" * 43)
    body = assert_error(response, 500)
    assert "portal_api_keys" not in response.text
    assert body["errors"] == {}


def test_the_api_is_rate_limited_per_key(
    database_url: str,
    app_factory: Callable[..., Flask],
    business: m.Business,
    customer: m.Customer,
    api_key: str,
) -> None:
    """T9: request N+1 with one key gets 429 in the JSON shape; other keys go on."""
    limited = app_factory(database_url, CUSTOMER_PORTAL_API_RATE_LIMIT="3 per minute")
    client = limited.test_client()
    for _ in range(3):
        assert create_session(client, customer.public_id, api_key).status_code == 200
    refused = create_session(client, customer.public_id, api_key)
    body = assert_error(refused, 429)
    assert "3 per 1 minute" in body["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 61

    other_key, _ = portal.create_api_key(business, "test")
    assert create_session(client, customer.public_id, other_key).status_code == 200
    for _ in range(3):
        assert_error(create_session(client, customer.public_id, None), 401)
    assert_error(create_session(client, customer.public_id, None), 429)


def test_wrong_keys_are_rate_limited_per_client_ip(
    database_url: str,
    app_factory: Callable[..., Flask],
    customer: m.Customer,
    api_key: str,
) -> None:
    """T9: each guessed key would count alone; the failures of one client IP are counted
    together, so guess N+1 gets 429 with Retry-After, whatever key it carries, while the
    right key from another IP goes on."""
    limited = app_factory(database_url, CUSTOMER_PORTAL_API_AUTH_FAILURE_RATE_LIMIT="3 per minute")
    client = limited.test_client()
    guesser = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    for guess in range(3):
        wrong = create_session(client, customer.public_id, f"cp_test_{guess:043d}", **guesser)
        assert_error(wrong, 401)
    refused = create_session(client, customer.public_id, "cp_test_" + "9" * 43, **guesser)
    body = assert_error(refused, 429)
    assert "3 per 1 minute" in body["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 61
    assert_error(create_session(client, customer.public_id, api_key, **guesser), 429)
    backend = {"environ_base": {"REMOTE_ADDR": "198.51.100.7"}}
    for _ in range(5):
        assert create_session(client, customer.public_id, api_key, **backend).status_code == 200


def test_keys_and_link_tokens_are_stored_only_hashed(
    client: FlaskClient,
    business: m.Business,
    customer: m.Customer,
    session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """T2: after an API key and a link are made, no column of any table and no log holds them."""
    caplog.set_level(logging.DEBUG)
    test_key, _ = portal.create_api_key(business, "test")
    live_key, _ = portal.create_api_key(business, "live")
    assert test_key.startswith("cp_test_") and live_key.startswith("cp_live_")
    assert len(test_key.removeprefix("cp_test_")) >= 43
    response = create_session(client, customer.public_id, test_key, json={"send_email": True})
    token = response.get_json()["link"].rsplit("/", 1)[1]

    raw_values = (
        test_key,
        live_key,
        token,
        single_use_id(token),
        test_key.removeprefix("cp_test_"),
    )
    for table, row in stored_rows(session):
        for raw in raw_values:
            assert raw not in row, table
    for raw in raw_values:
        assert raw not in caplog.text


def test_the_openapi_document_describes_exactly_the_routes(
    app: Flask, client: FlaskClient, customer: m.Customer
) -> None:
    """The served OpenAPI 3 document lists every route of the API with its methods, no more."""
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert re.fullmatch(r"3\.[01]\.\d+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["servers"] == [{"url": f"{EXTERNAL_URL}{API}"}]
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert doc["security"] == [{"bearerAuth": []}]

    verbs = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    documented = {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in verbs
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        # The catch-all rules only answer unknown paths and methods with JSON errors.
        if not rule.rule.startswith(API) or rule.endpoint == "customer_portal_api.unrouted":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(API))
        routed |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
        item = doc["paths"][path]
        for operation in (item[method.lower()] for method in rule.methods - {"HEAD", "OPTIONS"}):
            in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert in_path == set(rule.arguments), path
    assert routed == documented

    operation = doc["paths"]["/customers/{customer_id}/customer-portal/session"]["post"]
    assert {"200", "400", "401", "404", "429"} <= set(operation["responses"])
    parameters = {p["name"]: p for p in operation["parameters"]}
    deep_link = {"flow", "subscription_id", "invoice_id"}
    assert set(parameters) == {"customer_id", "send_email", "return_url", *deep_link}
    assert re.match(parameters["customer_id"]["schema"]["pattern"], customer.public_id)
    body_schema = resolve(doc, operation["requestBody"]["content"]["application/json"]["schema"])
    assert set(body_schema["properties"]) == {"send_email", "return_url", *deep_link}

    error_schema = doc["components"]["schemas"]["Error"]
    real_error = client.post(session_path(customer.public_id)).get_json()
    assert set(error_schema["required"]) == set(real_error) == set(error_schema["properties"])
    for code, answer in operation["responses"].items():
        schema = resolve(doc, answer["content"]["application/json"]["schema"])
        if code != "200":
            assert schema is error_schema, code
    assert set(resolve(doc, {"$ref": "#/components/schemas/PortalSession"})["required"]) == {
        "link",
        "expires_at",
    }
    assert_refs_resolve(doc, doc)


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` of the document."""
    if "$ref" not in schema:
        return schema
    node: Any = doc
    for part in schema["$ref"].removeprefix("#/").split("/"):
        node = node[part]
    return resolve(doc, node)


def assert_refs_resolve(doc: dict[str, Any], node: Any) -> None:
    if isinstance(node, dict):
        if "$ref" in node:
            assert node["$ref"].startswith("#/") and resolve(doc, node)
        for value in node.values():
            assert_refs_resolve(doc, value)
    elif isinstance(node, list):
        for value in node:
            assert_refs_resolve(doc, value)


@pytest.mark.parametrize("order", ["csrf first", "portal first"])
def test_a_host_with_csrf_protection_does_not_block_the_api(
    order: str, database_url: str, tmp_path: Path, customer: m.Customer, api_key: str
) -> None:
    """C1: only the API-key endpoints are exempt from the host's CSRFProtect, in either order."""
    host = Flask("host", instance_path=str(tmp_path / "host"))
    host.config.update(
        TESTING=True,
        SECRET_KEY="host-secret",
        CUSTOMER_PORTAL_DATABASE_URI=database_url,
        CUSTOMER_PORTAL_EXTERNAL_URL=EXTERNAL_URL,
        CUSTOMER_PORTAL_MAIL_DISPATCH="manual",
    )
    host.add_url_rule("/host-form", "host_form", lambda: "changed", methods=["POST"])
    if order == "csrf first":
        CSRFProtect(host)
        CustomerPortal(host)
    else:
        CustomerPortal(host)
        CSRFProtect(host)
    try:
        client = host.test_client()
        assert client.post("/host-form").status_code == 400
        assert create_session(client, customer.public_id, api_key).status_code == 200
        assert client.post("/portal/logout").status_code == 400
    finally:
        host.extensions["customer_portal"].engine.dispose()


@pytest.fixture
def fuzz_client(database_url: str, app_factory: Callable[..., Flask]) -> FlaskClient:
    """A client for all the examples of one fuzz run, without a tight rate limit."""
    fuzzed = app_factory(
        database_url,
        CUSTOMER_PORTAL_API_RATE_LIMIT="100000 per minute",
        CUSTOMER_PORTAL_API_AUTH_FAILURE_RATE_LIMIT="100000 per minute",
    )
    return fuzzed.test_client()


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """Draw from ``usual`` four times in five, so most requests get past the key and the id."""
    return st.integers(0, 4).flatmap(lambda n: odd if n == 0 else usual)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
_urls = st.one_of(
    st.text(max_size=60),
    st.builds(lambda tail: f"{EXTERNAL_URL}/{tail}", st.text(max_size=30)),
    st.sampled_from(["http://evil.example", "javascript:alert(1)", "https://[", "//x", ""]),
)
_params = st.fixed_dictionaries(
    {},
    optional={
        "send_email": st.one_of(_json_values, st.sampled_from(["true", "false", "1", "0"])),
        "return_url": st.one_of(_urls, _json_values),
        "other": _json_values,
    },
)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is never flaky
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    customer_id=mostly(st.none(), st.text(max_size=40)),
    query=st.dictionaries(
        st.sampled_from(["send_email", "return_url", "key"]) | st.text(max_size=8),
        st.text(max_size=40),
        max_size=3,
    ),
    body=st.one_of(
        st.none(),
        _params,
        st.binary(max_size=80),
        st.text(max_size=80),
    ),
    authorization=mostly(
        st.just("key"),
        st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    ),
)
def test_random_requests_never_crash_the_api(
    fuzz_client: FlaskClient,
    customer: m.Customer,
    api_key: str,
    customer_id: str | None,
    query: dict[str, str],
    body: Any,
    authorization: str | None,
) -> None:
    """V1: random ids, query values and bodies get a 2xx or a JSON error, never a 5xx."""
    headers = {}
    if authorization == "key":
        headers["Authorization"] = f"Bearer {api_key}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    kwargs: dict[str, Any] = {"headers": headers, "query_string": query}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif body is not None:
        kwargs["data"] = body
        kwargs["content_type"] = "application/json"
    path_id = customer.public_id if customer_id is None else quote(customer_id, safe="")
    response = fuzz_client.post(session_path(path_id), **kwargs)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error(response, response.status_code)
    elif response.status_code == 200:
        assert response.get_json()["link"].startswith(EXTERNAL_URL)
