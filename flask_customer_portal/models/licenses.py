"""License keys: what a customer bought a right to use, with its activations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, created_at_column, one_of, public_id_column

LICENSE_STATUSES = ("active", "inactive", "expired", "revoked")


class LicenseKey(Base):
    """A license key sold to a customer, with its activation count."""

    __tablename__ = "portal_license_keys"
    __table_args__ = (
        CheckConstraint(one_of("status", LICENSE_STATUSES), name="status"),
        CheckConstraint("activation_limit IS NULL OR activation_limit >= 1", name="limit"),
        CheckConstraint(
            "activations >= 0 AND (activation_limit IS NULL OR activations <= activation_limit)",
            name="activations",
        ),
        CheckConstraint("length(key) >= 8", name="key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("lk")
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("portal_subscriptions.id"))
    key: Mapped[str] = mapped_column(String(128), unique=True)
    product: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    activation_limit: Mapped[int | None] = mapped_column(Integer)
    activations: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = created_at_column()
