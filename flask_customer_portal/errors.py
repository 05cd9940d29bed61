"""The exceptions the portal raises. All derive from :class:`CustomerPortalError`."""

from __future__ import annotations


class CustomerPortalError(Exception):
    """Root of every error raised by flask-customer-portal."""


class ConfigurationError(CustomerPortalError):
    """The app's configuration is missing a key, misspells one or holds a bad value."""


class ValidationError(CustomerPortalError, ValueError):
    """Input to the data API is invalid; :attr:`field` names the offending field.

    Nothing is written to the database when this is raised.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidTransition(CustomerPortalError):
    """A subscription cannot move to the requested status from the one it is in."""

    def __init__(self, subscription_id: str, target: str, current: str | None) -> None:
        super().__init__(
            f"subscription {subscription_id} cannot become {target!r} from {current!r}"
        )
        self.subscription_id = subscription_id
        self.target = target
        self.current = current
