"""Many processes, one truth: the example store on gunicorn, as docs/deployment.md runs it.

The store runs under gunicorn with three workers (deploy/gunicorn.conf.py), and
as a second server process, against one real PostgreSQL and one real Redis; two
``flask portal send-mail --loop`` workers send the mail, and a reconciler runs
the whole time. The customer's browser sends each request to the next server
in turn, and gunicorn hands it to any of its workers: nothing may work only in
the process that started it.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from example_app import create_app
from example_app.models import db
from flask_customer_portal import (
    create_portal_session,
    get_business,
    record_failed_renewal,
    start_subscription,
    upsert_customer,
)
from flask_customer_portal import models as m
from flask_customer_portal.providers.test_tables import charges

from .postgres import Cluster
from .redis import RedisServer
from .smtp import HOST, SMTPServer, free_port, text_part, wait_until

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HIDDEN = re.compile(r'name="(setup_id|idempotency_key)" value="([^"]+)"')
CHECKED = re.compile(r'name="payment_method" value="(pm_\w+)" checked')
DECLINED, SUCCEEDS, AUTHENTICATE = "4000000000000002", "4242424242424242", "4000002760003184"

pytestmark = pytest.mark.postgresql_only


@dataclass
class Deployment:
    """The store's two servers, the workers beside them, and a way to run its commands."""

    servers: list[str]
    environment: dict[str, str]
    smtp: SMTPServer
    app: Flask

    def flask(self, *args: str) -> str:
        """Run ``flask --app example_app ARGS`` as the operator would; return its output."""
        result = subprocess.run(
            [str(BIN / "flask"), "--app", "example_app", *args],
            env=self.environment,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


class Browser:
    """A customer's browser whose every request goes to the next server of the store."""

    def __init__(self, deployment: Deployment) -> None:
        self.http = requests.Session()
        self.origin = deployment.servers[0]
        self.next_server = itertools.cycle(deployment.servers)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        path = url.removeprefix(self.origin)
        assert path.startswith("/"), url
        response = self.http.request(
            method, next(self.next_server) + path, allow_redirects=False, timeout=30, **kwargs
        )
        assert response.status_code < 500, (method, path, response.text[:500])
        return response

    def submit(self, url: str, **fields: str) -> requests.Response:
        """GET a page from one server, post its form (same URL) to the next."""
        page = self.request("GET", url)
        assert page.status_code == 200, (url, page.status_code)
        match = CSRF.search(page.text)
        assert match, url
        return self.request("POST", url, data={"csrf_token": match[1], **fields})

    def sign_in(self, deployment: Deployment, email: str) -> None:
        """Open a dynamic link from ``flask portal invite`` (another process again)."""
        link = _invite(deployment, email)
        assert self.submit(link).status_code == 303

    def add_card(self, edit: str, number: str) -> str:
        """From a payment method page, add ``number`` on the provider's page, and save it.

        Returns where the portal sends the customer then: the page with the new card chosen.
        """
        page = self.request("GET", edit)
        csrf = CSRF.search(page.text)
        assert csrf, page.text[:300]
        to_provider = self.request("POST", edit + "/new-card", data={"csrf_token": csrf[1]})
        assert to_provider.status_code == 303
        back = self.submit(to_provider.headers["Location"], number=number, expiry="12/34", cvc="1")
        assert back.status_code == 400, "a CVC has 3 or 4 digits"
        back = self.submit(
            to_provider.headers["Location"], number=number, expiry="12/34", cvc="123"
        )
        assert back.status_code == 303
        shown = self.request("GET", back.headers["Location"])
        assert shown.status_code == 200, shown.text[:300]
        setup_id = dict(HIDDEN.findall(shown.text))["setup_id"]
        saved = self.submit(back.headers["Location"], setup_id=setup_id)
        assert saved.status_code == 303 and "?card=pm_" in saved.headers["Location"]
        return str(saved.headers["Location"])

    def pay(self, page_url: str) -> requests.Response:
        """Press "Confirm changes" on a payment method page, with the card it checked."""
        edit = page_url.split("?")[0]
        page = self.request("GET", page_url)
        checked = CHECKED.search(page.text)
        assert checked, page.text[:300]
        key = dict(HIDDEN.findall(page.text))["idempotency_key"]
        csrf = CSRF.search(page.text)
        assert csrf
        fields = {"csrf_token": csrf[1], "idempotency_key": key, "payment_method": checked[1]}
        return self.request("POST", edit, data=fields)


def _invite(deployment: Deployment, email: str) -> str:
    output = deployment.flask("portal", "invite", email, "--business", "acme", "--json")
    link = re.search(r'"dynamic_link": "([^"]+)"', output)
    assert link, output
    return link[1]


@pytest.fixture
def deployment(pg_cluster: Cluster, redis_server: RedisServer) -> Iterator[Deployment]:
    database = pg_cluster.create_database(f"store_{os.urandom(4).hex()}")
    smtp = SMTPServer()
    smtp.start()
    ports = [free_port(), free_port()]
    settings = {
        "DEBUG": True,
        "SECRET_KEY": "a-secret-of-the-multi-process-test-0123456789abcdef",
        "STAFF_PASSWORD": "multi-process-staff",
        "SQLALCHEMY_DATABASE_URI": database,
        "CUSTOMER_PORTAL_EXTERNAL_URL": f"http://{HOST}:{ports[0]}",
        "CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI": redis_server.url,
        "CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_IP": "4 per minute",
        "CUSTOMER_PORTAL_MAIL_BACKEND": "smtp",
        "CUSTOMER_PORTAL_MAIL_DISPATCH": "manual",
        "MAIL_SERVER": HOST,
        "MAIL_PORT": smtp.port,
    }
    environment = {
        **os.environ,
        **{
            f"FLASK_{key}": str(value).lower() if value is True else str(value)
            for key, value in settings.items()
        },
    }
    app = create_app(settings)
    seeded = app.test_cli_runner().invoke(args=["seed-demo"])
    assert seeded.exit_code == 0, seeded.output
    processes = []

    def start(*command: str, **extra: str) -> None:
        processes.append(
            subprocess.Popen(
                command,
                env={**environment, **extra},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    try:  # whatever happens from here, every process started is stopped
        gunicorn = (str(BIN / "gunicorn"), "-c", str(ROOT / "deploy/gunicorn.conf.py"))
        start(*gunicorn, "example_app:create_app()", PORTAL_BIND=f"{HOST}:{ports[0]}")
        start(
            *gunicorn,
            "example_app:create_app()",
            PORTAL_BIND=f"{HOST}:{ports[1]}",
            PORTAL_WORKERS="1",
        )
        for _ in range(2):
            start(
                str(BIN / "flask"),
                "--app",
                "example_app",
                "portal",
                "send-mail",
                "--loop",
                "--interval",
                "0.2",
            )
        servers = [f"http://{HOST}:{port}" for port in ports]
        for server in servers:
            wait_until(lambda server=server: _answers(server), timeout=60)
        yield Deployment(servers, environment, smtp, app)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
        with app.app_context():
            db.engine.dispose()
        smtp.stop()


def _answers(server: str) -> bool:
    try:
        return requests.get(server + "/", timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or its workers still booting
        return False


def test_many_processes_share_one_truth(deployment: Deployment) -> None:
    """T3, T9, M1, P3, P4: links, rate limits, payments, mail and reconciling, across processes."""
    app = deployment.app

    # T3: a link used up in one process is refused by another.
    link = _invite(deployment, "ana@example.com")
    assert Browser(deployment).submit(link).status_code == 303
    late = Browser(deployment)
    assert late.request("GET", link).status_code == 410
    late.next_server = itertools.cycle(deployment.servers[::-1])
    assert late.request("GET", link).status_code == 410

    # T9: a rate limit counted in one process applies in the other (Redis).
    visitor = Browser(deployment)
    answers = [
        visitor.submit("/portal/test/login/acme", email=f"someone{n}@example.com").status_code
        for n in range(5)
    ]
    assert answers == [200, 200, 200, 200, 429]

    # Bruno pays his dues: declined, then paid, each request on any worker.
    with app.app_context():
        business = get_business("acme")
        assert business is not None
        bruno = upsert_customer(business, "bruno@example.com", locale="en")
        bruno_plan = db_scalar(
            sa.select(m.Subscription.public_id).filter_by(customer_id=bruno.id, status="on_hold")
        )
    edit = f"/portal/subscriptions/{bruno_plan}/payment-method"
    browser = Browser(deployment)
    browser.sign_in(deployment, "bruno@example.com")
    declined = browser.pay(browser.add_card(edit, DECLINED))
    assert declined.status_code == 400 and "declined" in declined.text
    paid = browser.pay(browser.add_card(edit, SUCCEEDS))
    assert paid.status_code == 303, re.findall(r'class="cp-error"[^>]*>([^<]*)', paid.text)
    assert "/portal/payments/py_" in paid.headers["Location"]
    assert browser.request("GET", paid.headers["Location"]).status_code == 200
    assert _statuses(app, bruno_plan) == ("active", ["failed", "succeeded"])

    # P3, P4: 3-D Secure for Dora while a reconciler runs all along in its own process.
    with app.app_context():
        business = get_business("acme")
        assert business is not None
        dora = upsert_customer(business, "dora@example.com", name="Dora", locale="en")
        plan = start_subscription(dora, product="Acme Cloud", price=900, currency="USD")
        record_failed_renewal(plan, reason="Your card was declined.")
        dora_plan, dora_ref = plan.public_id, dora.public_id
    reconciler = subprocess.Popen(
        [sys.executable, "-c", RECONCILE_LOOP],
        env=deployment.environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        edit = f"/portal/subscriptions/{dora_plan}/payment-method"
        browser = Browser(deployment)
        browser.sign_in(deployment, "dora@example.com")
        to_bank = browser.pay(browser.add_card(edit, AUTHENTICATE))
        assert (
            to_bank.status_code == 303
            and "/test-provider/challenge/" in to_bank.headers["Location"]
        )
        back = browser.submit(to_bank.headers["Location"], decision="approve")
        assert back.status_code == 303
        shown = browser.request("GET", back.headers["Location"])
        assert shown.status_code == 303
        assert browser.request("GET", shown.headers["Location"]).status_code == 200
        time.sleep(1)  # the reconciler takes a few more turns after the payment
    finally:
        reconciler.send_signal(signal.SIGTERM)
        _, errors = reconciler.communicate(timeout=30)
    assert reconciler.returncode == 0, errors.decode()
    assert _statuses(app, dora_plan) == ("active", ["succeeded"])
    with app.app_context():
        made = db.session.execute(sa.select(charges.c.status, charges.c.customer_ref)).all()
        assert [status for status, ref in made if ref == dora_ref] == ["succeeded"]

    # M1: two mail workers send each message exactly once.
    with app.app_context():
        crowd = db.session.scalars(sa.select(m.Customer).order_by(m.Customer.id).limit(20)).all()
        for customer in crowd:
            create_portal_session(customer, send_email=True)
        emails = sorted(customer.email for customer in crowd)

    def all_sent() -> bool:
        with app.app_context():
            pending = db.session.scalar(
                sa.select(sa.func.count()).select_from(m.OutboxMessage).filter_by(status="pending")
            )
            db.session.remove()
            return pending == 0

    wait_until(all_sent, timeout=60)
    with app.app_context():
        sent = db.session.scalar(
            sa.select(sa.func.count()).select_from(m.OutboxMessage).filter_by(status="sent")
        )
    received = deployment.smtp.wait_for(sent, timeout=10)
    assert len(received) == sent
    # The only messages with a sign-in link: the portal links (in each customer's language).
    with_link = [r for r in received if "/portal/test/login/acme/" in text_part(r.message)]
    recipients = sorted(r.rcpt_tos[0] for r in with_link)
    assert recipients == emails, "each customer got their link once"


#: The reconciler: `flask portal reconcile --older-than 0`, again and again, until SIGTERM.
RECONCILE_LOOP = """
import signal, sys
from example_app import create_app
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
runner = create_app().test_cli_runner()
while not stop:
    result = runner.invoke(args=["portal", "reconcile", "--older-than", "0"])
    if result.exit_code != 0:
        sys.exit(result.output)
"""


def db_scalar(statement: Any) -> Any:
    return db.session.scalar(statement)


def _statuses(app: Flask, public_id: str) -> tuple[str, list[str]]:
    with app.app_context():
        subscription = db.session.scalars(
            sa.select(m.Subscription).filter_by(public_id=public_id)
        ).one()
        payments = db.session.scalars(
            sa.select(m.Payment.status)
            .filter_by(subscription_id=subscription.id)
            .where(m.Payment.idempotency_key.is_not(None))
            .order_by(m.Payment.id)
        ).all()
        status = subscription.status
        db.session.remove()
        return status, list(payments)
