"""Why customers cancel: each business's list of reasons, and checking what was given.

A business whose ``cancellation_reasons`` switch is on asks a cancelling
customer for one reason of its list, plus an optional comment. The list is the
built-in :data:`DEFAULT_REASONS` unless the setting
``CUSTOMER_PORTAL_CANCELLATION_REASONS`` names one for the business (by its
public id, or ``"*"`` for every business not named): pairs of a code (kept with
the subscription, sent in the signal) and the label the customer reads, shown
as given (pass ``lazy_gettext`` strings to have them translated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import validation as v
from .config import config_value
from .errors import ValidationError
from .i18n import lazy_gettext as _l
from .models import Business

#: The longest comment a customer may add to their reason.
MAX_COMMENT_LENGTH = 500

#: The reasons asked for when the merchant gives no list: (code, label) pairs,
#: the labels translated into the customer's language.
DEFAULT_REASONS: tuple[tuple[str, Any], ...] = (
    ("too_expensive", _l("It is too expensive")),
    ("missing_features", _l("It is missing features I need")),
    ("switched_service", _l("I am switching to another service")),
    ("not_using", _l("I am not using it enough")),
    ("technical_problems", _l("I had technical problems")),
    ("other", _l("Another reason")),
)


def reasons_for(business: Business) -> tuple[tuple[str, Any], ...]:
    """Return the (code, label) pairs ``business`` asks its cancelling customers to choose from."""
    configured: Mapping[str, Any] = config_value("CANCELLATION_REASONS")
    return tuple(configured.get(business.public_id, configured.get("*", DEFAULT_REASONS)))


def checked_reason(
    business: Business, reason: Any, comment: Any, *, required: bool
) -> tuple[str | None, str | None]:
    """Return ``(reason, comment)`` checked for ``business``: the reason one of its codes (given
    when ``required``), the comment plain text, stripped, at most 500 characters (P1).

    :raises ValidationError: ``reason`` is missing (code ``"reason_required"``) or not
        one of the business's codes (``"invalid_reason"``); ``comment`` is not text,
        too long, or holds a card number or control characters.
    """
    codes = tuple(code for code, _label in reasons_for(business))
    if reason is None or reason == "":
        if required:
            raise ValidationError(
                "reason", "reason_required", f"choose one of {', '.join(codes)}", choices=codes
            )
        reason = None
    elif reason not in codes:
        raise ValidationError(
            "reason",
            "invalid_reason",
            f"must be one of {', '.join(codes)}; got {reason!r}",
            choices=codes,
        )
    text = v.text("comment", comment, max_length=MAX_COMMENT_LENGTH, required=False, multiline=True)
    return reason, text
