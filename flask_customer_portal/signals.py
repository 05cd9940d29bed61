"""Signals for every change in a customer's account, so the merchant's app can react.

Connect with ``signal.connect(receiver, app)`` or ``@signal.connect_via(app)``.
Every signal is sent with the Flask app as its sender and the keyword
arguments named in its comment, after the change is committed, by the domain
function that made the change: a call from the merchant's own code sends the
same signals as the customer's pages.
"""

from __future__ import annotations

from typing import Any

from blinker import NamedSignal, Namespace
from flask.globals import app_ctx

_signals = Namespace()

#: A customer signed in. Sender: the app; ``customer``, ``method`` ("link" or "host").
customer_signed_in = _signals.signal("customer-signed-in")
#: A customer changed their profile. Sender: the app; ``customer``, ``changes``
#: (field name → (old value, new value)).
profile_updated = _signals.signal("profile-updated")
#: A customer confirmed a new email address. Sender: the app; ``customer``,
#: ``old_email``, ``new_email``.
email_changed = _signals.signal("email-changed")
#: A subscription was cancelled. Sender: the app; ``customer``, ``subscription``,
#: ``at_period_end`` (False: it ended at once), ``reason`` (the code the customer
#: chose, or None) and ``comment`` (their words, or None).
subscription_cancelled = _signals.signal("subscription-cancelled")
#: A cancellation scheduled for the end of the period was undone. Sender: the
#: app; ``customer``, ``subscription``.
cancellation_undone = _signals.signal("cancellation-undone")
#: A customer downloaded an invoice's PDF. Sender: the app; ``customer``, ``invoice``.
invoice_downloaded = _signals.signal("invoice-downloaded")
#: A subscription's payment method changed (or paying its dues set it).
#: Sender: the app; ``customer``, ``subscription``, ``payment_method``.
payment_method_updated = _signals.signal("payment-method-updated")
#: A card was saved for a customer, or a saved one changed (a new expiry, made the
#: default). Sender: the app; ``customer``, ``payment_method``.
payment_method_saved = _signals.signal("payment-method-saved")
#: A saved card was removed (the processor detached it). Sender: the app;
#: ``customer``, ``payment_method`` (no longer in the database).
payment_method_removed = _signals.signal("payment-method-removed")
#: A payment succeeded. Sender: the app; ``customer``, ``subscription``, ``payment``, ``invoice``.
payment_succeeded = _signals.signal("payment-succeeded")
#: A payment failed. Sender: the app; ``customer``, ``subscription``, ``payment``,
#: ``reason`` (for the customer, such as "Your card was declined.").
payment_failed = _signals.signal("payment-failed")
#: An on-hold subscription became active again once its dues were paid. Sender:
#: the app; ``customer``, ``subscription``, ``payment``.
subscription_reactivated = _signals.signal("subscription-reactivated")
#: A paid renewal was recorded (``record_renewal``): the subscription is in its
#: next period. Sender: the app; ``customer``, ``subscription``, ``invoice``, ``payment``.
subscription_renewed = _signals.signal("subscription-renewed")
#: The merchant changed a current subscription's plan or quantity (``change_plan``,
#: ``change_quantity``). Sender: the app; ``customer``, ``subscription``, ``changes``
#: (field name → (old value, new value)).
subscription_changed = _signals.signal("subscription-changed")


def send(signal: NamedSignal, **kwargs: Any) -> None:
    """Send ``signal`` from the current app to each receiver in turn.

    The change it announces is already committed, so a receiver that raises
    cannot undo it: its error is logged with its traceback, and the other
    receivers and the customer's page carry on.
    """
    app = app_ctx.app  # the app itself: receivers are connected to it, not to a proxy
    for receiver in signal.receivers_for(app):
        try:
            receiver(app, **kwargs)
        except Exception:
            app.logger.exception(
                "a receiver of the %r signal failed; the change it announces stands", signal.name
            )
