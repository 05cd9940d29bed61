"""The one way the portal builds an absolute URL: from an endpoint, on ``EXTERNAL_URL``.

Links leave the site (in mail, in API answers, to a payment provider), so they
are never built from the request's ``Host`` header, which a client chooses:
the app's URL map is bound to ``CUSTOMER_PORTAL_EXTERNAL_URL`` instead, the
same way inside a request, in a CLI command or in the mail thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from flask import current_app, url_for

from .config import config_value
from .errors import ConfigurationError


def external_url(endpoint: str, **values: Any) -> str:
    """Return the absolute URL of ``endpoint`` (``"customer_portal.overview"``) with ``values``.

    :raises ConfigurationError: ``CUSTOMER_PORTAL_EXTERNAL_URL`` is not set, or
        no view is registered for ``endpoint`` (with ``register_blueprint=False``,
        mount your own views under the portal's endpoint names).
    """
    base = config_value("EXTERNAL_URL")
    if base is None:
        raise ConfigurationError("set CUSTOMER_PORTAL_EXTERNAL_URL to build links")
    app = current_app
    if endpoint not in app.view_functions:
        raise ConfigurationError(
            f"no view for {endpoint!r} to link to: the portal's links need its views "
            "(register_blueprint=True), or views of your own under the same endpoint names"
        )
    origin = urlsplit(base)
    adapter = app.url_map.bind(
        origin.netloc, script_name=app.config["APPLICATION_ROOT"], url_scheme=origin.scheme
    )
    app.inject_url_defaults(endpoint, values)
    return adapter.build(endpoint, values, force_external=True)


def mode_endpoint(name: str, mode: str) -> str:
    """Return the endpoint of a page the portal serves once per mode.

    Live mode's pages are at their plain path (``login``), test mode's under
    ``/test`` (``test_login``), so a link says which world it opens.
    """
    return f"customer_portal.{'test_' if mode == 'test' else ''}{name}"


def link_maker(endpoint: str, argument: str) -> Callable[[str], str]:
    """Return a function giving ``url_for(endpoint, **{argument: value})`` for many values.

    For the many links of one page to one view (each row of the billing
    history links to its invoice): ``url_for`` runs once, with a marker for the
    value, and each call puts a value in the marker's place, quoted as
    Werkzeug's default converter quotes a path segment. Only for an argument
    the rule takes with that converter.
    """
    marker = "cp-value-marker"
    values: dict[str, Any] = {argument: marker}
    before, found, after = url_for(endpoint, **values).partition(marker)
    if not found or "?" in before:  # a query argument is quoted otherwise
        raise ValueError(f"{endpoint!r} does not put {argument!r} in its path")
    return lambda value: before + quote(value, safe=_PATH_SAFE) + after


#: What Werkzeug's default converter leaves unquoted in a path segment.
_PATH_SAFE = "!$&'()*+,/:;=@"
