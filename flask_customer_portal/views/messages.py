"""What a customer reads when the domain refuses something: one sentence per error code.

Domain functions raise :class:`~..errors.ValidationError` with a stable
``code`` (and the field); the pages never parse its English message, they
look the code up here and show the translated sentence.
"""

from __future__ import annotations

from ..errors import ValidationError
from ..i18n import N_, gettext

#: The sentence for an error code, whatever the field.
_BY_CODE = {
    # Cancelling, and taking it back.
    "already_cancelled": N_("This subscription has already been cancelled."),
    "already_expired": N_("This subscription has already expired."),
    "already_failed": N_("This subscription has already failed to start."),
    "already_scheduled": N_("This subscription is already set to end at the end of its period."),
    "no_paid_period": N_("This subscription has no paid period to run out; it can only end now."),
    "period_end_not_offered": N_(
        "Cancelling at the end of the period is not offered; you can cancel now."
    ),
    "now_not_offered": N_(
        "Cancelling at once is not offered; you can cancel at the end of the period."
    ),
    "nothing_to_undo": N_("This subscription has no cancellation to undo."),
    "period_over": N_("This subscription's period has ended; the cancellation stands."),
    "reason_required": N_("Choose the reason you are cancelling."),
    "invalid_reason": N_("Choose one of the reasons in the list."),
    # Paying.
    "subscription_ended": N_("This subscription has ended; its payment method cannot change."),
    "nothing_to_pay": N_("This subscription has nothing to pay."),
    "invoice_closed": N_("This invoice is no longer open, so nothing was charged."),
    "payment_in_flight": N_(
        "A payment with this card is not finished yet. Try again once it is settled."
    ),
    "last_card": N_(
        "This is the only card of a current subscription, so it cannot be removed. "
        "Add another card first."
    ),
    "idempotency_conflict": N_(
        "This page was out of date, so nothing was done. Check the details and confirm again."
    ),
    # The billing history's filters and pages.
    "invalid_cursor": N_("That page of your billing history does not exist. Start again."),
    "after_and_before": N_("That page of your billing history does not exist. Start again."),
}

#: The sentence for an error code of one field, where it names the field.
_BY_FIELD = {
    ("name", "card_number"): N_("Name looks like a card number; never type one here."),
    ("name", "too_long"): N_("Name must be at most %(max_length)s characters."),
    ("name", "control_characters"): N_("Name must not contain control characters."),
    ("email", "required"): N_("Email address is required."),
    ("email", "recent_sign_in_required"): N_(
        "Email address can only be changed soon after you sign in."
    ),
    ("email", "email_taken"): N_("Email address belongs to another account; use another address."),
    ("phone", "invalid_phone"): N_("Phone is not a valid phone number."),
    ("phone", "no_country_code"): N_(
        "Phone is not a phone number; include the country code, like +55 11 98765-4321."
    ),
    ("comment", "too_long"): N_("Your comment must be at most %(max_length)s characters."),
    ("comment", "card_number"): N_("Your comment looks like a card number; never type one here."),
    ("comment", "control_characters"): N_("Your comment must not contain control characters."),
    ("invoice", "nothing_to_pay"): N_("This invoice has nothing left to pay."),
    ("invoice", "payment_in_flight"): N_(
        "A payment of this invoice is not finished yet. Check again in a moment."
    ),
    ("status", "invalid_choice"): N_(
        "There is no such status to filter by. Choose one from the list."
    ),
}

#: The sentence for any other error of a field.
_FIELD_FALLBACKS = {
    "name": N_("Name is not valid."),
    "email": N_("Email address is not a valid email address."),
    "phone": N_("Phone is not a valid phone number."),
}

#: The sentence for an error nothing above names.
_FALLBACK = N_("This could not be done, and nothing was changed. Please try again.")


def error_message(error: ValidationError) -> str:
    """Return the translated sentence a customer reads for ``error``."""
    sentence = (
        _BY_FIELD.get((error.field, error.code))
        or _BY_CODE.get(error.code)
        or _FIELD_FALLBACKS.get(error.field)
        or _FALLBACK
    )
    return gettext(sentence, **error.params)
