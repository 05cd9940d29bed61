"""The HTTP API for merchants' backends: portal sessions for backends in any language.

One route does the work, as in Dodo Payments' Create Portal Session API::

    POST {prefix}/api/v1/customers/<customer_id>/customer-portal/session
    Authorization: Bearer cp_test_...

and a sibling finds the customer by the merchant's own id or by email, given
in the JSON body (``{"external_id": "user_42"}`` or ``{"email": ...}``), so an
address never lands in an access log::

    POST {prefix}/api/v1/customer-portal/session

Both answer ``{"link": ..., "expires_at": ...}``; ``GET {prefix}/api/v1/openapi.json``
describes them. Every error of the blueprint, whatever raised it (a bad key, an
unknown route, a rate limit, a crash), comes from one handler in one JSON shape,
flask-smorest's: ``{"code": 404, "status": "Not Found", "message": "...",
"errors": {"field": ["message"]}}``.

The API key is the only credential: it is read from the ``Authorization``
header alone, never from the URL (where it would land in logs) or a cookie, so
the blueprint needs no CSRF token (T13).
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask_limiter.util import get_remote_address
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from werkzeug.http import HTTP_STATUS_CODES

from . import access, links
from .config import config_value
from .deep_links import FLOWS
from .errors import ValidationError
from .models import ApiKey, Customer
from .openapi import CUSTOMER_ID, LOOKUPS, MAX_BODY, SESSION_PARAMETERS, TARGETS, document
from .proxies import portal
from .records import find_customer, get_customer
from .state import PortalState
from .views.guard import (
    METHODS,
    add_any_path_converter,
    cap_body,
    methods_elsewhere,
    strict_transport_security,
)

NAME = "customer_portal_api"

#: One answer for a missing, malformed, unknown or revoked key (T13).
UNAUTHORIZED = (
    "A valid API key is required: send it as 'Authorization: Bearer <key>'. "
    "Create one with 'flask portal create-api-key'."
)
_QUERY_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class InvalidRequest(BadRequest):
    """A 400 that names the offending fields: ``errors`` maps each to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("The request has invalid parameters: " + ", ".join(sorted(errors)) + ".")
        self.errors = errors


class TargetNotFound(NotFound):
    """A 404 for a deep link's record that is not the customer's (or not given)."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(f"{error.field} {error.message}.")
        self.errors = {error.field: [error.message]}


def create_blueprint(state: PortalState) -> Blueprint:
    """Build the API blueprint for one app, with that app's rate limiter (T9)."""
    blueprint = Blueprint(NAME, __name__)
    blueprint.record_once(add_any_path_converter)
    # Each limit is shared by the session routes: a key (or a guesser) has one
    # budget, whichever route it calls.
    per_key = state.limiter.shared_limit(
        lambda: config_value("API_RATE_LIMIT"), "api-sessions", key_func=_rate_limit_key
    )
    # A guessed key has a bucket of its own above: the failures of a client IP are
    # counted together, and once over the limit its every request is refused, so
    # a 401 never again tells a wrong key from a right one.
    failures_per_ip = state.limiter.shared_limit(
        lambda: config_value("API_AUTH_FAILURE_RATE_LIMIT"),
        "api-auth-failures",
        key_func=lambda: "api-auth-failure:" + get_remote_address(),
        deduct_when=lambda response: response.status_code == 401,
    )
    for rule, view in (
        ("/customers/<customer_id>/customer-portal/session", create_session),
        ("/customer-portal/session", create_session_by_lookup),
    ):
        blueprint.add_url_rule(
            rule,
            view.__name__,
            per_key(failures_per_ip(view)),
            methods=["POST"],
            provide_automatic_options=False,
        )
    blueprint.add_url_rule(
        "/openapi.json", "openapi", openapi_document, provide_automatic_options=False
    )
    # Routing errors (an unknown path, a wrong method) never reach a blueprint's
    # error handler; these catch-all rules bring them home, so they are JSON too.
    every = [*METHODS, "OPTIONS"]
    blueprint.add_url_rule(
        "/", "unrouted", unrouted, defaults={"path": ""}, strict_slashes=False, methods=every
    )
    blueprint.add_url_rule("/<portal_any_path:path>", "unrouted", unrouted, methods=every)

    blueprint.before_request(_cap_body)
    json_blueprint(blueprint)
    return blueprint


def json_blueprint(blueprint: Blueprint) -> None:
    """Make ``blueprint`` a JSON endpoint of machines': JSON errors, no cache, no CSRF token.

    The HTTP API and the payment providers' webhooks are called with a
    credential of their own (a bearer key, a signature) and no cookie, so
    there is no CSRF token to ask for and nothing to forge.
    """
    blueprint.after_request(_no_store)
    # Code-specific handlers of the host app would win over a class-wide one
    # here (Flask looks up by code first), so the codes are registered one by one.
    for code in (400, 401, 404, 405, 409, 413, 415, 429, 500):
        blueprint.register_error_handler(code, _error_response)
    blueprint.register_error_handler(HTTPException, _error_response)
    # A host app with Flask-WTF's CSRFProtect would ask these calls for a CSRF
    # token. The host may set CSRFProtect up before the portal or after it: the
    # blueprint's URL value preprocessor runs on its own requests only,
    # before any before_request function (CSRFProtect's check among them).
    blueprint.url_value_preprocessor(lambda endpoint, values: _exempt_from_csrf(blueprint))


def _exempt_from_csrf(blueprint: Blueprint) -> None:
    csrf = current_app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(blueprint)


# -- Views ---------------------------------------------------------------------------


def create_session(customer_id: str) -> Response:
    """Create a single-use dynamic link into a customer's portal."""
    api_key = _authenticate()
    customer = _customer(api_key, customer_id)
    errors: dict[str, list[str]] = {}
    options = _session_options(_json_body(), errors)
    if errors:
        raise InvalidRequest(errors)
    return _portal_session(customer, options)


def create_session_by_lookup() -> Response:
    """Create a single-use dynamic link for the customer named by external id or email."""
    api_key = _authenticate()
    body = _json_body()
    errors: dict[str, list[str]] = {}
    lookup = _lookup(body, errors)
    options = _session_options(body, errors, body_only=LOOKUPS)
    if errors:
        raise InvalidRequest(errors)
    field, value = lookup
    try:
        if field == "email":
            customer = find_customer(api_key.business, value, mode=api_key.mode)
        else:
            customer = get_customer(api_key.business, mode=api_key.mode, external_id=value)
    except ValidationError:
        customer = None  # an id no customer can have finds no one
    if customer is None:
        # One message whatever the reason: it never tells which addresses exist elsewhere.
        raise NotFound(f"No customer with this {field} in this API key's business and mode.")
    return _portal_session(customer, options)


def _portal_session(customer: Customer, options: dict[str, Any]) -> Response:
    try:
        link = access.create_portal_session(customer, **options)
    except ValidationError as error:
        # Only a deep link's target is checked here (the rest was, while parsing): a
        # record that is not this customer's is not found, whoever's it is (Z1).
        raise TargetNotFound(error) from None
    return jsonify(link=link.url, expires_at=link.expires_at.isoformat(timespec="seconds"))


def openapi_document() -> Response:
    """Serve the OpenAPI description of this API."""
    base = config_value("EXTERNAL_URL") or ""
    # What access.check_return_url allows; tests/test_api_fuzz.py holds the two together.
    origins = [origin for origin in (base, *config_value("RETURN_URL_ORIGINS")) if origin]
    return jsonify(
        document(
            base + config_value("URL_PREFIX") + "/api/v1",
            return_url_origins=origins,
            loopback=current_app.debug or current_app.testing,
        )
    )


def unrouted(path: str) -> Response:
    """Answer a path or method the API does not have: 405 if another method fits, else 404."""
    allowed = methods_elsewhere()
    if allowed:
        raise MethodNotAllowed(allowed, "This method is not allowed here.")
    raise NotFound("There is no such endpoint in this API.")


# -- Request parsing -----------------------------------------------------------------


def _bearer_key() -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def _authenticate() -> ApiKey:
    key = _bearer_key()
    api_key = access.authenticate_api_key(key) if key else None
    if api_key is None:
        raise Unauthorized(UNAUTHORIZED, www_authenticate=WWWAuthenticate("bearer"))
    return api_key


def _customer(api_key: ApiKey, customer_id: str) -> Customer:
    # The key's business and mode scope the lookup: any other customer is 404 (T13).
    customer = None
    if re.match(CUSTOMER_ID, customer_id):
        customer = get_customer(api_key.business, customer_id, mode=api_key.mode)
    if customer is None:
        raise NotFound(f"No customer {customer_id[:64]!r} in this API key's business and mode.")
    return customer


def _json_body() -> dict[str, Any]:
    data = request.get_data(cache=True)
    if not data:
        return {}
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON, with 'Content-Type: application/json'.")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def _lookup(body: dict[str, Any], errors: dict[str, list[str]]) -> tuple[str, str]:
    """Return which of :data:`LOOKUPS` the body names the customer by, and its value."""
    given = [name for name in LOOKUPS if name in body]
    if len(given) != 1:
        for name in LOOKUPS:
            errors[name] = ["give exactly one of external_id and email, in the JSON body"]
        return "", ""
    field, value = given[0], body[given[0]]
    longest = 255 if field == "external_id" else 254
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        errors[field] = [f"must be a string of 1 to {longest} characters"]
    return field, value


def _session_options(
    body: dict[str, Any], errors: dict[str, list[str]], *, body_only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Return the options of :func:`.access.create_portal_session`, from the JSON body or
    else the query string.

    Adds what is wrong to ``errors``. ``body_only`` are the other parameters the
    body may hold, and the query string not.
    """
    for name in sorted((set(body) - set(body_only)) | set(request.args)):
        if name in body_only:
            errors[name] = ["give it in the JSON body, not the query string"]
        elif name not in SESSION_PARAMETERS:
            errors[name] = ["is not a parameter of this endpoint"]
    values: dict[str, Any] = {}
    for name in SESSION_PARAMETERS:
        given = request.args.getlist(name)
        if name in body:
            values[name] = body[name]
        elif len(given) > 1:
            errors[name] = ["is given more than once"]
        elif given and name == "send_email":
            values[name] = _QUERY_BOOLEANS.get(given[0].lower(), given[0])
        elif given:
            values[name] = given[0]

    send_email = values.get("send_email", False)
    if not isinstance(send_email, bool):
        errors["send_email"] = ["must be true or false"]
    return_url = values.get("return_url")
    if return_url is not None:
        try:
            return_url = access.check_return_url(return_url)
        except ValidationError as error:
            errors["return_url"] = [error.message]
    flow = values.get("flow")
    if "flow" in values and (not isinstance(flow, str) or flow not in FLOWS):
        errors["flow"] = ["must be one of " + ", ".join(FLOWS)]
    targets = {name: values.get(name) for name in TARGETS}
    for name, value in targets.items():
        if name in values and (not isinstance(value, str) or not 0 < len(value) <= 64):
            errors[name] = ["must be a string of 1 to 64 characters"]
    options: dict[str, Any] = {"send_email": send_email, "return_url": return_url}
    if isinstance(flow, str) and flow in FLOWS:
        # Only the id the flow opens is read: the other (and both, without a flow) is
        # left alone, so a request the document calls valid is never refused for it.
        needed = FLOWS[flow][1]
        options.update(flow=flow, **{needed: targets[needed]})
    return options


def _rate_limit_key() -> str:
    # Per API key (by its hash, never the key itself), else per client address.
    key = _bearer_key()
    return "api-key:" + links.hash_token(key) if key else "api-ip:" + get_remote_address()


def _cap_body() -> None:
    cap_body(MAX_BODY, f"The body may be at most {MAX_BODY // 1024} KiB.")


def _no_store(response: Response) -> Response:
    # Answers hold sign-in links: no cache may keep them.
    response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return strict_transport_security(response)


# -- Errors --------------------------------------------------------------------------


def _error_response(error: HTTPException) -> Response:
    """Render any error of the API in its one JSON shape."""
    code = error.code or 500
    message = error.description or HTTP_STATUS_CODES.get(code, "Error")
    if code == 429:
        message = f"Too many requests (the limit is {error.description}). Try again later."
    response = jsonify(
        code=code,
        status=HTTP_STATUS_CODES.get(code, "Unknown Error"),
        message=message,
        errors=getattr(error, "errors", {}),
    )
    response.status_code = code
    for header, value in error.get_headers():
        if header.lower() != "content-type":
            response.headers[header] = value
    if code == 429:
        response.headers["Retry-After"] = str(_retry_after())
    return response


def _retry_after() -> int:
    limit = portal.limiter.current_limit
    return max(math.ceil(limit.reset_at - time.time()), 1) if limit else 60
