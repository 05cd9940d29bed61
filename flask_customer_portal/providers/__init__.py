"""Payment providers: the protocol, and the test provider the portal ships."""

from __future__ import annotations

from .base import ChargeResult, PaymentProvider, ProviderError, SavedCard
from .test import TestProvider

__all__ = ["ChargeResult", "PaymentProvider", "ProviderError", "SavedCard", "TestProvider"]
