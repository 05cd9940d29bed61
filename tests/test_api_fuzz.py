"""The HTTP API against its own OpenAPI document, fuzzed by schemathesis (V1).

schemathesis reads the document the app serves (``GET /portal/api/v1/openapi.json``),
makes requests from it, schema-valid ones and ones that break it on purpose, and
sends them to the app in-process. Whatever it sends, the API answers without a
5xx, with a status code, media type and body the document declares; what the
document calls valid is accepted, what it calls invalid is refused, and a request
that is accepted with the key is refused without it. Most requests carry the
real API key and the id of a real customer (its cus_ id, its external id or
its email, whichever the route takes), so they get past the key and the
look-up and reach the parameters.

Two runs, both the same on every run (CI never fails by chance): schemathesis's
coverage cases (boundary values, missing and extra parameters, other methods),
which it derives from the document without randomness; then Hypothesis,
derandomized, with a bounded number of examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal.openapi import CUSTOMER_ID

API = "/portal/api/v1"
SESSION = "/customers/{customer_id}/customer-portal/session"
LOOKUP = "/customer-portal/session"
#: The customer's id in the merchant's system, which the lookup route finds it by.
EXTERNAL_ID = "user_42"

#: What schemathesis expects of the answers. A valid request is answered 200, or
#: 401 without the key, or 404 for the id of no customer: never 400, and never 429
#: (the limit is out of reach here). An invalid one is refused with one of the
#: document's refusals. Given here, so that a schemathesis.toml lying around
#: changes nothing.
CONFIG = {
    "checks": {
        "positive_data_acceptance": {"expected-statuses": [200, 401, 404]},
        "negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 413, 415]},
    }
}


@pytest.fixture
def app(database_url: str, app_factory: Callable[..., Flask]) -> Flask:
    """The portal app, with a rate limit that no fuzz run reaches."""
    return app_factory(
        database_url,
        CUSTOMER_PORTAL_API_RATE_LIMIT="100000 per minute",
        CUSTOMER_PORTAL_API_AUTH_FAILURE_RATE_LIMIT="100000 per minute",
    )


@pytest.fixture
def customer(business: m.Business) -> m.Customer:
    """The customer, with an external id, a subscription and an open invoice (for deep links)."""
    customer = portal.upsert_customer(business, "ana@example.com", external_id=EXTERNAL_ID)
    subscription = portal.start_subscription(
        customer, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
    )
    portal.record_failed_renewal(subscription, reason="Card declined at renewal")
    return customer


@pytest.fixture
def api_key(business: m.Business) -> str:
    """A test-mode API key of the customer's business."""
    raw, _ = portal.create_api_key(business, "test", name="backend")
    return raw


@pytest.fixture
def api_schema(app: Flask) -> Any:
    """The OpenAPI document as the app serves it, loaded by schemathesis."""
    config = SchemathesisConfig.from_dict(CONFIG)
    return schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app, config=config)


def send(
    app: Flask, case: Case, customer: m.Customer, api_key: str, *, real_id: bool, real_key: bool
) -> int:
    """Send ``case`` to the app, check the answer against the document; return its status.

    :param real_id: the customer id, external id or email, if it fits the
        document, becomes the real customer's (one that breaks the document
        stays: the case stays invalid).
    :param real_key: send the real API key, as the caller's own credentials, so
        schemathesis also checks the same request without it, or with a wrong one,
        is refused; not when the case breaks the document in its headers on purpose.
    """
    drawn_id = case.path_parameters.get("customer_id") if case.path_parameters else None
    if real_id and isinstance(drawn_id, str) and re.fullmatch(CUSTOMER_ID, drawn_id):
        case.path_parameters["customer_id"] = customer.public_id
    if real_id:
        # A deep link's record, if it fits the document, becomes the customer's own.
        records = {
            "subscription_id": customer.subscriptions[0].public_id,
            "invoice_id": customer.invoices[0].public_id,
        }
        for values in (case.query, case.body):
            for name, value in records.items():
                if isinstance(values, dict) and isinstance(values.get(name), str):
                    values[name] = value if 0 < len(values[name]) <= 64 else values[name]
    if real_id and isinstance(case.body, dict):
        real = {"external_id": (EXTERNAL_ID, 255), "email": (customer.email, 254)}
        for name, (value, longest) in real.items():
            drawn = case.body.get(name)
            if isinstance(drawn, str) and 0 < len(drawn) <= longest:
                case.body[name] = value
    # The document says a parameter in the body wins over the query string's: the
    # query's value is not read then, so it is not sent (it would test nothing).
    if isinstance(case.body, dict) and case.query:
        case.query = {name: value for name, value in case.query.items() if name not in case.body}
    broken_headers = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    headers = {"Authorization": f"Bearer {api_key}"} if real_key and not broken_headers else None
    response = case.call_and_validate(session=app.test_client(), headers=headers)
    return int(response.status_code)


def test_the_coverage_cases_get_the_answers_the_document_gives(
    app: Flask, api_schema: Any, customer: m.Customer, api_key: str
) -> None:
    """V1: boundary values, missing, extra and repeated parameters, other methods."""
    statuses: dict[str, set[int]] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        config = api_schema.config.generation_for(operation=operation, phase="coverage")
        cases = api_schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config
        )
        for case in cases:
            status = send(app, case, customer, api_key, real_id=True, real_key=True)
            statuses.setdefault(operation.label, set()).add(status)
    # The cases got past the key and the look-up: some were accepted, some refused.
    assert {200, 400, 401, 404, 405} <= statuses[f"POST {SESSION}"], statuses
    # Every external id or email that fits the document became the real one here.
    assert {200, 400, 401, 405} <= statuses[f"POST {LOOKUP}"], statuses
    # The document's own route takes no parameters, so it has no coverage cases.
    assert "GET /openapi.json" not in statuses
    document_route = api_schema["/openapi.json"]["GET"].Case()
    assert send(app, document_route, customer, api_key, real_id=True, real_key=False) == 200


@pytest.mark.parametrize("path", [SESSION, LOOKUP])
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI never fails by chance
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    mode=st.sampled_from(GenerationMode),
    real_id=st.integers(0, 3).map(bool),
    real_key=st.integers(0, 4).map(bool),
)
def test_random_requests_get_the_answers_the_document_gives(
    app: Flask,
    api_schema: Any,
    customer: m.Customer,
    api_key: str,
    path: str,
    data: st.DataObject,
    mode: GenerationMode,
    real_id: bool,
    real_key: bool,
) -> None:
    """V1: no 5xx; declared statuses, media types and bodies; valid in, invalid out.

    The real customer's id three times in four, the real key four times in five.
    """
    case = data.draw(api_schema[path]["POST"].as_strategy(generation_mode=mode))
    status = send(app, case, customer, api_key, real_id=real_id, real_key=real_key)
    event(f"{mode.value}: {status}")
