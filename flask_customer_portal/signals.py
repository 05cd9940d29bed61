"""Signals for every customer action, so the merchant's app can react.

Connect with ``signal.connect(receiver, app)`` or ``@signal.connect_via(app)``.
Every signal is sent with the Flask app as its sender and the keyword
arguments named in its comment; each is sent after the change is committed.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A customer signed in. Sender: the app; ``customer``, ``method`` ("link" or "host").
customer_signed_in = _signals.signal("customer-signed-in")
#: A customer changed their profile. Sender: the app; ``customer``, ``changes``
#: (field name → (old value, new value)).
profile_updated = _signals.signal("profile-updated")
#: A customer confirmed a new email address. Sender: the app; ``customer``,
#: ``old_email``, ``new_email``.
email_changed = _signals.signal("email-changed")
#: A customer cancelled a subscription. Sender: the app; ``customer``,
#: ``subscription``, ``at_period_end`` (False: it ended at once).
subscription_cancelled = _signals.signal("subscription-cancelled")
#: A customer undid a cancellation scheduled for the end of the period. Sender:
#: the app; ``customer``, ``subscription``.
cancellation_undone = _signals.signal("cancellation-undone")
#: A customer downloaded an invoice's PDF. Sender: the app; ``customer``, ``invoice``.
invoice_downloaded = _signals.signal("invoice-downloaded")
#: A customer changed a subscription's payment method (or paying its dues set it).
#: Sender: the app; ``customer``, ``subscription``, ``payment_method``.
payment_method_updated = _signals.signal("payment-method-updated")
#: A payment succeeded. Sender: the app; ``customer``, ``subscription``, ``payment``, ``invoice``.
payment_succeeded = _signals.signal("payment-succeeded")
#: A payment failed. Sender: the app; ``customer``, ``subscription``, ``payment``,
#: ``reason`` (for the customer, such as "Your card was declined.").
payment_failed = _signals.signal("payment-failed")
#: An on-hold subscription became active again once its dues were paid. Sender:
#: the app; ``customer``, ``subscription``, ``payment``.
subscription_reactivated = _signals.signal("subscription-reactivated")
