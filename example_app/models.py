"""The store's own database and its one table: the staff who run Acme Cloud."""

from __future__ import annotations

from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash


class Base(DeclarativeBase):
    """Base class of the store's models (the portal's tables have a base of their own).

    ``db.Model`` is made from it and shares its metadata, so ``db.create_all()``
    creates these tables; models subclass ``Base`` because type checkers can
    follow it and cannot follow ``db.Model``.
    """


db = SQLAlchemy(model_class=Base)


class Staff(UserMixin, Base):
    """A member of the store's staff, who signs in with an email and a password."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password``, never the password itself."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Return whether ``password`` is this member's password."""
        return check_password_hash(self.password_hash, password)
