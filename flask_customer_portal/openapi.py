"""The HTTP API's contract: its OpenAPI 3.1 document, and the limits it states.

Written out by hand; :mod:`.api` enforces what it states (the customer id's
pattern, the body's size, the parameters, the return URL's origins),
``tests/test_api.py`` checks that its paths and methods are exactly the
blueprint's routes, and ``tests/test_api_fuzz.py`` holds every answer of the API
to it. Served at ``{prefix}/api/v1/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .deep_links import FLOWS

#: The largest request body the API reads, in bytes (V1).
MAX_BODY = 16 * 1024
#: What a customer's public id looks like; anything else is not looked up.
CUSTOMER_ID = r"^cus_[0-9a-z]{1,36}$"
#: The parameters of the session routes, in the query string or the JSON body.
SESSION_PARAMETERS = ("send_email", "return_url", "flow", "subscription_id", "invoice_id")
#: The deep link's record of each flow: a subscription, or an invoice for ``pay_invoice``.
TARGETS = ("subscription_id", "invoice_id")
#: How the sibling session route names a customer: exactly one, in the JSON body.
LOOKUPS = ("external_id", "email")
#: What may follow a return URL's origin: a path, query and fragment of URI characters.
_URL_TAIL = r"(?:[/?#](?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#]|%[0-9A-Fa-f]{2})*)?"
#: The loopback hosts a return URL may name over http while the app is in debug or testing.
_LOOPBACK = r"http://(?:localhost|127\.0\.0\.1|\[::1\])(?::[0-9]{1,5})?"


def return_url_pattern(origins: Iterable[str], *, loopback: bool) -> str:
    """Return the pattern (ECMA-262, as OpenAPI wants) of the return URLs the API accepts.

    A URL on one of ``origins`` (each ``scheme://host[:port]``), and with
    ``loopback`` one on http://localhost too; the empty string means none.
    """
    hosts = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", origin) for origin in origins]
    if loopback:
        hosts.append(_LOOPBACK)
    if not hosts:
        return "^$"
    return f"^(?:(?:{'|'.join(hosts)}){_URL_TAIL})?$"


def _error(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


def _session_operation(
    operation_id: str,
    summary: str,
    scope: str,
    *,
    path: list[dict[str, Any]],
    body: str,
    return_url: dict[str, Any],
) -> dict[str, Any]:
    """Return a session route's operation: ``path`` parameters, then the shared ones."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": (
            "Returns a single-use link that takes the customer straight into "
            f"their portal. {scope} "
            "Parameters may come in the query string or in a JSON body; the "
            "body's value wins. Rate-limited per API key "
            "(CUSTOMER_PORTAL_API_RATE_LIMIT)."
        ),
        "parameters": [
            *path,
            {
                "name": "send_email",
                "in": "query",
                "required": False,
                "description": (
                    "Also email a sign-in link to the customer "
                    "(true, false, 1 or 0; default false)."
                ),
                "schema": {"type": "boolean", "default": False},
            },
            {
                "name": "return_url",
                "in": "query",
                "required": False,
                "description": "See the request body's return_url.",
                "schema": return_url,
            },
            *(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": f"See the request body's {name}.",
                    "schema": {key: value for key, value in schema.items() if key != "description"},
                }
                for name, schema in DEEP_LINK_PROPERTIES.items()
            ),
        ],
        "requestBody": {
            "required": not path,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        },
        "responses": {
            "200": {
                "description": "The link and when it stops working.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PortalSession"}}
                },
            },
            "400": _error("A parameter is invalid; `errors` names it."),
            "401": _error(
                "The API key is missing, malformed, unknown or revoked.",
                {"WWW-Authenticate": "Bearer"},
            ),
            "404": _error(
                "No such customer in the API key's business and mode; or the flow's "
                "subscription_id or invoice_id is not given, or is not one of this "
                "customer's (`errors` names it)."
            ),
            "413": _error(f"The body is larger than {MAX_BODY} bytes."),
            "415": _error("The body is not JSON."),
            "429": _error(
                "Too many requests with this API key.",
                {"Retry-After": "Seconds until a request is allowed again."},
            ),
            "default": _error("Any other error, in the same shape."),
        },
    }


#: A deep link's parameters: the action to open, and its record.
DEEP_LINK_PROPERTIES: dict[str, dict[str, Any]] = {
    "flow": {
        "type": "string",
        "enum": list(FLOWS),
        "description": (
            "Open one action right after sign-in: update_payment_method, cancel or "
            "change_plan of the subscription subscription_id, or pay_invoice of the "
            "invoice invoice_id. Once the action is done the customer goes to "
            "return_url (or the portal's overview). change_plan shows the "
            "subscription on the subscriptions page for now."
        ),
    },
    "subscription_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "description": (
            "The public id of one of the customer's subscriptions (sub_...), for every "
            "flow but pay_invoice; read only with such a flow."
        ),
    },
    "invoice_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "description": (
            "The public id of one of the customer's invoices (in_...), for pay_invoice; "
            "read only with that flow."
        ),
    },
}


def document(
    server_url: str, *, return_url_origins: Iterable[str], loopback: bool = False
) -> dict[str, Any]:
    """Return the OpenAPI document of the API mounted at ``server_url``.

    :param return_url_origins: the origins a ``return_url`` may point to (the
        portal's own, and ``RETURN_URL_ORIGINS``); the document states them.
    :param loopback: a ``return_url`` may also be http on localhost (debug, testing).
    """
    return_url = {
        "type": "string",
        "maxLength": 2000,
        "pattern": return_url_pattern(return_url_origins, loopback=loopback),
    }
    session_properties = {
        "send_email": {
            "type": "boolean",
            "default": False,
            "description": "Also email a sign-in link to the customer.",
        },
        "return_url": {
            **return_url,
            "type": ["string", "null"],
            "description": (
                'Where the portal\'s "Return to <business>" button leads: '
                "a URL on the portal's own origin or one of "
                "CUSTOMER_PORTAL_RETURN_URL_ORIGINS, as the pattern "
                "lists them. Null or empty: no such button."
            ),
        },
        **DEEP_LINK_PROPERTIES,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flask-customer-portal API",
            "version": "1",
            "description": (
                "Create sign-in links into the customer portal from a backend in any "
                "language. Every error has the same JSON shape (the Error schema)."
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/customers/{customer_id}/customer-portal/session": {
                "post": _session_operation(
                    "createCustomerPortalSession",
                    "Create a portal session (a dynamic link) for a customer",
                    "The API key's business and mode scope the customer.",
                    path=[
                        {
                            "name": "customer_id",
                            "in": "path",
                            "required": True,
                            "description": "The customer's public id.",
                            "schema": {"type": "string", "pattern": CUSTOMER_ID},
                            "example": "cus_k3x9q0m2vz8w4t6y1p5r",
                        }
                    ],
                    body="SessionRequest",
                    return_url=return_url,
                )
            },
            "/customer-portal/session": {
                "post": _session_operation(
                    "createCustomerPortalSessionByLookup",
                    "Create a portal session for a customer found by external id or email",
                    "The JSON body names the customer by exactly one of external_id (the "
                    "customer's id in your own system) and email, within the API key's "
                    "business and mode; they go in the body, never the query string, so "
                    "that an address stays out of access logs. Otherwise the same as "
                    "createCustomerPortalSession.",
                    path=[],
                    body="SessionLookupRequest",
                    return_url=return_url,
                )
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApiDocument",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document of this API.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "default": _error("Any error."),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "An API key of one business and mode (cp_test_... or cp_live_...), "
                        "from `flask portal create-api-key`. Only in this header."
                    ),
                }
            },
            "schemas": {
                "SessionRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": session_properties,
                },
                "SessionLookupRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "external_id": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "description": (
                                "The customer's id in your own system (set with "
                                "upsert_customer or set_external_id)."
                            ),
                            "example": "user_42",
                        },
                        "email": {
                            "type": "string",
                            "format": "email",
                            "minLength": 1,
                            "maxLength": 254,
                            "description": "The customer's email address, in any case.",
                            "example": "ana@example.com",
                        },
                        **session_properties,
                    },
                    "oneOf": [{"required": ["external_id"]}, {"required": ["email"]}],
                },
                "PortalSession": {
                    "type": "object",
                    "required": ["link", "expires_at"],
                    "properties": {
                        "link": {
                            "type": "string",
                            "format": "uri",
                            "description": "The single-use sign-in link.",
                        },
                        "expires_at": {
                            "type": "string",
                            "format": "date-time",
                            "description": "When the link stops working (UTC, ISO 8601).",
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["code", "status", "message", "errors"],
                    "properties": {
                        "code": {"type": "integer", "description": "The HTTP status code."},
                        "status": {"type": "string", "description": "Its reason phrase."},
                        "message": {"type": "string"},
                        "errors": {
                            "type": "object",
                            "description": "The messages of each invalid field.",
                            "additionalProperties": {
                                "type": "array",
                                "items": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    }
