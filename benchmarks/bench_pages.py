"""Time the customer's pages and the invoice PDF on a large account (run by hand).

    python benchmarks/bench_pages.py [--invoices 3000] [--repeat 20]

Seeds an embedded SQLite database in a temporary folder with one customer
holding N paid invoices, signs in through a real link, and reports the median
and 95th percentile time of each page, plus page 1 against a deep page of the
billing history (keyset paging: they should cost the same).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

import flask_customer_portal as portal
from flask_customer_portal import migrate

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def build(folder: Path, invoices: int) -> tuple[Flask, str, str]:
    app = Flask("bench", instance_path=str(folder))
    app.config.update(
        TESTING=True,
        SECRET_KEY="bench",
        CUSTOMER_PORTAL_EXTERNAL_URL="http://bench.example.com",
        CUSTOMER_PORTAL_MAIL_DISPATCH="manual",
        CUSTOMER_PORTAL_REDEEM_RATE_LIMIT="100000 per minute",
    )
    portal.CustomerPortal(app)
    with app.app_context():
        migrate.upgrade()
        business = portal.create_business("Bench Co", public_id="bench")
        customer = portal.upsert_customer(business, "bench@example.com", name="Bench")
        plan = portal.start_subscription(customer, product="Cloud", price=2900, currency="USD")
        start = datetime(2020, 1, 1, tzinfo=UTC)
        for index in range(invoices):
            at = start + timedelta(hours=index)
            invoice = portal.issue_invoice(
                customer,
                [{"description": "Cloud", "unit_amount": 2900}],
                currency="USD",
                subscription=plan,
                issued_at=at,
            )
            portal.record_payment(customer, invoice=invoice, amount=2900, currency="USD", at=at)
        link = portal.create_portal_session(customer).url
        first_invoice = invoice.public_id
    return app, link, first_invoice


def timed(client: FlaskClient, path: str, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--invoices", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        app, link, invoice_id = build(Path(folder), args.invoices)
        print(f"seeded {args.invoices} invoices in {time.perf_counter() - began:.1f} s")
        client = app.test_client()
        path = link.removeprefix("http://bench.example.com")
        token = CSRF.search(client.get(path).text)
        assert token
        client.post(path, data={"csrf_token": token[1]})
        deep = "/portal/billing"
        for _ in range(40):  # walk to page 40 through the "Older" links
            page = client.get(deep).text
            older = re.search(r'href="(/portal/billing\?[^"]*after=[^"]+)"', page)
            if older is None:
                break
            deep = older[1].replace("&amp;", "&")
        pages = {
            "overview": "/portal/",
            "billing page 1": "/portal/billing",
            "billing page 40": deep,
            "subscriptions": "/portal/subscriptions",
            "invoice detail": f"/portal/billing/invoices/{invoice_id}",
            "invoice PDF": f"/portal/billing/invoices/{invoice_id}.pdf",
        }
        print(f"{'page':<18}{'median ms':>11}{'p95 ms':>9}")
        for name, page_path in pages.items():
            median, p95 = timed(client, page_path, args.repeat)
            print(f"{name:<18}{median:>11.1f}{p95:>9.1f}")


if __name__ == "__main__":
    main()
