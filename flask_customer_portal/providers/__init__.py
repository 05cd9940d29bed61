"""Payment providers: the protocol, and the test provider the portal ships."""

from __future__ import annotations

from .base import ChargeResult, PaymentProvider, ProviderError, SavedCard

__all__ = ["ChargeResult", "PaymentProvider", "ProviderError", "SavedCard"]
