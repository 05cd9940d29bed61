"""Structured log lines of what happens in customers' accounts, for the merchant's logs.

One logger, ``flask_customer_portal.audit``, one INFO line per event:
``sign_in customer=cus_... business=acme mode=test method=link``. The fields
are also on the log record (``record.event`` and ``record.fields``) for a JSON
formatter. They are public ids, statuses, amounts and counts only: never a
token, an API key, a link, an email address, or anything of a card but its
public id.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("flask_customer_portal.audit")

#: What a field may hold: an id, a word, a number.
Field = str | int | None


def event(name: str, **fields: Field) -> None:
    """Log the event ``name`` with its ``fields``, as ``key=value`` pairs in that order."""
    pairs = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.info("%s %s", name, pairs, extra={"event": name, "fields": fields})
