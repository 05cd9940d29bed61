"""The exceptions the portal raises. All derive from :class:`CustomerPortalError`."""

from __future__ import annotations

from typing import Any


class CustomerPortalError(Exception):
    """Root of every error raised by flask-customer-portal."""


class ConfigurationError(CustomerPortalError):
    """The app's configuration is missing a key, misspells one or holds a bad value."""


class ValidationError(CustomerPortalError, ValueError):
    """Input is invalid, or the change is not allowed now; nothing was written.

    :attr:`field` names the offending field and :attr:`code` says what is wrong
    in a word that never changes (``"required"``, ``"too_long"``,
    ``"card_number"``...): code acts on the code, and pages show their own
    translated sentence for it. :attr:`message` says the same in English for a
    developer, and :attr:`params` holds the values it mentions
    (``{"max_length": 200}``). ``docs/integration.md`` lists every code.
    """

    def __init__(self, field: str, code: str, message: str, **params: Any) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code
        self.message = message
        self.params = params


class InvalidTransition(CustomerPortalError):
    """A subscription cannot move to the requested status from the one it is in."""

    def __init__(self, subscription_id: str, target: str, current: str | None) -> None:
        super().__init__(
            f"subscription {subscription_id} cannot become {target!r} from {current!r}"
        )
        self.subscription_id = subscription_id
        self.target = target
        self.current = current
