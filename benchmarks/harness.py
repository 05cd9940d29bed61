"""The run: seed (or reuse), serve, sign in, count statements, measure in turns, report."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from flask import Flask

from . import servers, sites
from .databases import PostgreSQLDatabases, Seeding, SQLiteDatabases
from .load import Request, Sample, run_plain, run_wrk, wrk_version
from .seed import Scale
from .settings import DATA, RESULTS, ROOT, baseline_settings, environment, store_settings
from .smtp import slow_mail_server

Log = Callable[[str], None]


@dataclass
class Options:
    """What to measure, and how; ``make bench`` passes its variables here."""

    #: Invoices in the full database (customers: a tenth of that).
    scale: int = 1_000_000
    databases: tuple[str, ...] = ("sqlite", "postgresql")
    #: Seconds of each measured load run, and of the warm-up before each page's first.
    duration: float = 5.0
    warmup: float = 2.0
    rounds: int = 3
    threads: int = 2
    connections: int = 16
    workers: int = 2
    #: Also serve a database of ``small_scale`` invoices and measure each page on it.
    compare_small: bool = True
    small_scale: int = 1000
    #: The deep page of the billing history (25 entries a page).
    deep_page: int = 400
    #: Distinct invoices whose PDF is downloaded once each, for the first download.
    pdf_first: int = 100
    #: Seconds the local mail server takes to accept each message the store sends.
    mail_delay: float = 2.0
    #: Renders of a ten-line invoice's PDF, in-process, for the median render time.
    renders: int = 50
    #: "wrk" (the measurement) or "plain" (a Python HTTP client: the smoke test).
    loader: str = "wrk"
    #: With the plain client: requests per load run.
    plain_requests: int = 200
    report: Path = ROOT / "docs" / "performance.md"
    data: Path = DATA
    results: Path = RESULTS
    #: Profile this page in-process instead of measuring (a path or a page's name).
    profile: str | None = None
    profile_repeat: int = 20
    #: The command that reproduces this run, written in the report.
    command: str = "make bench"


@dataclass
class PageRun:
    """One page's samples in each round: the store's, the baseline's, the small store's."""

    key: str
    label: str
    portal: list[Sample] = field(default_factory=list)
    baseline: list[Sample] = field(default_factory=list)
    small: list[Sample] = field(default_factory=list)
    statements: int | None = None
    baseline_statements: int | None = None
    #: The store's samples with one connection (the sign-in request only).
    alone: list[Sample] = field(default_factory=list)


@dataclass
class Downloads:
    """Invoice PDFs fetched one at a time: distinct invoices once each, then one repeatedly."""

    count: int
    first_ms: list[float]
    repeated_ms: list[float]
    first_statements: int | None
    #: The status of a repeated download sent with the first one's ETag (If-None-Match).
    conditional_status: int


@dataclass
class BackendRun:
    backend: str
    version: str
    scale: Scale
    small_scale: Scale | None
    seeding: dict[str, Seeding]
    database_size: str
    pages: list[PageRun]
    memory: dict[str, dict[int, float]]
    downloads: Downloads | None
    #: Each in-process render of a ten-line invoice's PDF, in milliseconds.
    render_ms: list[float]
    #: Messages the slow mail server accepted while the stores were measured.
    mail_received: int
    seconds: float


@dataclass
class RunResult:
    options: Options
    started: datetime
    machine: dict[str, str]
    backends: list[BackendRun]
    seconds: float = 0.0


def logger() -> Log:
    began = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - began:6.0f} s] {message}", flush=True)

    return log


# -- The whole run ------------------------------------------------------------------------


def run(options: Options, log: Log | None = None, cluster: Any | None = None) -> RunResult:
    """Measure every database of ``options``; write the report and the JSON results."""
    from . import report

    log = log or logger()
    began = time.perf_counter()
    result = RunResult(options, datetime.now(UTC), machine(), [])
    for backend in options.databases:
        result.backends.append(run_backend(backend, options, log, cluster))
    result.seconds = time.perf_counter() - began
    options.results.mkdir(parents=True, exist_ok=True)
    stamp = result.started.strftime("%Y%m%dT%H%M%SZ")
    saved = options.results / f"run-{stamp}.json"
    saved.write_text(json.dumps(asdict(result), indent=1, default=str))
    report.write(result, options.report)
    print()
    print(report.results(result))
    log(f"results: {saved.relative_to(ROOT) if saved.is_relative_to(ROOT) else saved}")
    log(f"report: {options.report}")
    return result


def databases_of(backend: str, options: Options, log: Log, cluster: Any | None) -> Any:
    if backend == "sqlite":
        return SQLiteDatabases(options.data, log)
    if backend == "postgresql":
        return PostgreSQLDatabases(options.data, log, cluster)
    raise ValueError(f"unknown database {backend!r}: sqlite or postgresql")


def run_backend(backend: str, options: Options, log: Log, cluster: Any | None) -> BackendRun:
    began = time.perf_counter()
    scale = Scale.of(options.scale, options.deep_page)
    small = Scale.of(options.small_scale, options.deep_page) if options.compare_small else None
    with databases_of(backend, options, log, cluster) as dbs:
        seeding = {"full": dbs.seeded(scale)}
        if small is not None:
            seeding["small"] = dbs.seeded(small)
        log(f"{backend}: working copies")
        full_url = dbs.working_copy(scale, "full")
        small_url = dbs.working_copy(small, "small") if small is not None else None
        with (
            slow_mail_server(options.mail_delay) as (mail_port, mail),
            serving(backend, options, full_url, small_url, mail_port, log) as running,
        ):
            pages, memory, downloads = measure(backend, options, scale, small, running, log)
            renders = render_times(running.apps["portal"], options.renders)
            mail_received = mail.received
        return BackendRun(
            backend=backend,
            version=dbs.version(),
            scale=scale,
            small_scale=small,
            seeding=seeding,
            database_size=dbs.size(scale),
            pages=pages,
            memory=memory,
            downloads=downloads,
            render_ms=renders,
            mail_received=mail_received,
            seconds=time.perf_counter() - began,
        )


@dataclass
class Running:
    servers: dict[str, servers.Server]
    apps: dict[str, Flask]
    urls: dict[str, str]


@contextmanager
def serving(
    backend: str,
    options: Options,
    full_url: str,
    small_url: str | None,
    mail_port: int,
    log: Log,
) -> Iterator[Running]:
    """The store on the full database, the baseline beside it, the store on the small one.

    The stores send their mail to the local mail server on ``mail_port``.
    """
    from example_app.models import db as store_db

    from .baseline import db as baseline_db

    logs = options.results / "logs"
    plans: dict[str, tuple[str, Callable[[str], dict[str, str]], str]] = {
        "portal": (
            "example_app:create_app()",
            lambda origin: environment(store_settings(full_url, origin, mail_port)),
            "/portal/health",
        ),
        "baseline": (
            "benchmarks.baseline:create_app()",
            lambda origin: environment(baseline_settings(full_url)),
            "/health",
        ),
    }
    urls = {"portal": full_url, "baseline": full_url}
    if small_url is not None:
        plans["portal-small"] = (
            "example_app:create_app()",
            lambda origin: environment(store_settings(small_url, origin, mail_port)),
            "/portal/health",
        )
        urls["portal-small"] = small_url
    log(f"{backend}: starting {', '.join(plans)} (gunicorn, {options.workers} workers each)")
    started: dict[str, servers.Server] = {}
    apps: dict[str, Flask] = {}
    try:
        with ThreadPoolExecutor(len(plans)) as pool:
            futures = {
                name: pool.submit(
                    servers.start,
                    f"{backend}-{name}",
                    spec,
                    env,
                    workers=options.workers,
                    health=health,
                    logs=logs,
                )
                for name, (spec, env, health) in plans.items()
            }
            errors = []
            for name, future in futures.items():
                try:
                    started[name] = future.result()
                except RuntimeError as error:
                    errors.append(str(error))
            if errors:
                raise RuntimeError("\n".join(errors))
        from example_app import create_app as create_store

        from .baseline import create_app as create_baseline

        for name, server in started.items():
            if name == "baseline":
                apps[name] = create_baseline(baseline_settings(urls[name]))
            else:
                apps[name] = create_store(store_settings(urls[name], server.url))
        yield Running(started, apps, urls)
    finally:
        for server in started.values():
            server.terminate()
        for server in started.values():
            server.stop()
        for name, app in apps.items():
            with app.app_context():
                (baseline_db if name == "baseline" else store_db).engine.dispose()


def engine_of(name: str, app: Flask) -> sa.Engine:
    from example_app.models import db as store_db

    from .baseline import db as baseline_db

    with app.app_context():
        return (baseline_db if name == "baseline" else store_db).engine


def measure(
    backend: str,
    options: Options,
    scale: Scale,
    small: Scale | None,
    running: Running,
    log: Log,
) -> tuple[list[PageRun], dict[str, dict[int, float]], Downloads | None]:
    deep = options.deep_page if scale.has_page(options.deep_page) else None
    log(f"{backend}: signing in; following the history's links to page {deep}")
    portal = sites.store_site(
        "portal",
        running.servers["portal"].url,
        running.apps["portal"],
        deep_page=deep,
        collect_invoices=True,
    )
    baseline = sites.baseline_site(
        running.servers["baseline"].url,
        running.urls["baseline"],
        deep_page=deep,
        invoice_id=portal.invoice_ids[0],
    )
    measured = {"portal": portal, "baseline": baseline}
    if small is not None:
        small_deep = options.deep_page if small.has_page(options.deep_page) else None
        measured["portal-small"] = sites.store_site(
            "portal-small",
            running.servers["portal-small"].url,
            running.apps["portal-small"],
            deep_page=small_deep,
            collect_invoices=False,
        )
    for site in measured.values():
        sites.check(site)
    log(f"{backend}: every page answers 200; counting statements in-process")
    ids = portal.invoice_ids
    counts = sites.count_statements(
        running.apps["portal"],
        engine_of("portal", running.apps["portal"]),
        portal,
        sites.sign_in_store(running.apps["portal"]),
        portal.path("link"),
        sites.LOGIN_PATH,
        extra={"pdf_first": f"/portal/billing/invoices/{ids[-1]}.pdf"} if len(ids) > 2 else None,
    )
    baseline_counts = sites.count_statements(
        running.apps["baseline"],
        engine_of("baseline", running.apps["baseline"]),
        baseline,
        sites.sign_in_baseline,
        baseline.path("link"),
        "/request-link",
    )
    pages = []
    for page in sites.PAGES:
        label = page.label.format(deep=options.deep_page)
        pages.append(
            PageRun(page.key, label, statements=counts.get(page.key),
                    baseline_statements=baseline_counts.get(page.key))
        )  # fmt: skip
    roles = {"portal": "portal", "baseline": "baseline", "portal-small": "small"}
    for number in range(1, options.rounds + 1):
        log(f"{backend}: round {number} of {options.rounds}")
        for run_ in pages:
            for name, site in measured.items():
                request = site.requests.get(run_.key)
                if request is None:
                    continue
                if number == 1 and options.warmup > 0:
                    load(request, options, warm=True)
                sample = load(request, options)
                getattr(run_, roles[name]).append(sample)
                flag = f"  {sample.errors} ERRORS" if sample.errors else ""
                log(
                    f"  {run_.key:<14} {name:<13} {sample.rps:8.1f} req/s  "
                    f"p50 {sample.p50_ms:7.1f} ms  p99 {sample.p99_ms:7.1f} ms{flag}"
                )
            if run_.key == "sign_in":
                # Again from one client at a time: the request's own time, without
                # the wait behind others that 16 connections on 2 workers add.
                sample = load(portal.requests["sign_in"], options, connections=1)
                run_.alone.append(sample)
                log(
                    f"  {run_.key:<14} {'one client':<13} {sample.rps:8.1f} req/s  "
                    f"p50 {sample.p50_ms:7.1f} ms  p99 {sample.p99_ms:7.1f} ms"
                )
    downloads = None
    if len(ids) > 2:
        count = min(options.pdf_first, len(ids) - 2)
        log(f"{backend}: first downloads of {count} distinct invoices' PDFs, one at a time")
        downloads = pdf_downloads(portal, ids[1 : 1 + count], counts.get("pdf_first"))
    memory = {name: server.rss_mb() for name, server in running.servers.items()}
    return pages, memory, downloads


def load(
    request: Request, options: Options, *, warm: bool = False, connections: int | None = None
) -> Sample:
    """Load ``request`` as ``options`` say, with ``connections`` instead of theirs if given."""
    connections = connections or options.connections
    if options.loader == "wrk":
        return run_wrk(
            request,
            duration=options.warmup if warm else options.duration,
            threads=min(options.threads, connections),
            connections=connections,
        )
    count = max(4, options.plain_requests // 4) if warm else options.plain_requests
    return run_plain(request, requests=count, connections=min(connections, 4))


def pdf_downloads(site: sites.Site, ids: list[str], first_statements: int | None) -> Downloads:
    with requests.Session() as browser:
        browser.headers["Cookie"] = site.cookie
        first = [_fetch_pdf(browser, site.origin, invoice) for invoice in ids]
        repeated = [_fetch_pdf(browser, site.origin, site.invoice_ids[0]) for _ in ids]
        url = f"{site.origin}/portal/billing/invoices/{site.invoice_ids[0]}.pdf"
        etag = browser.get(url, timeout=60).headers.get("ETag", "")
        conditional = browser.get(url, headers={"If-None-Match": etag}, timeout=60).status_code
    return Downloads(len(ids), first, repeated, first_statements, conditional)


def render_times(app: Flask, count: int) -> list[float]:
    """Render a ten-line invoice's PDF ``count`` times in-process; each render's milliseconds.

    The invoice is issued to the measured customer through the data API, on the
    run's copy of the database; the renderer is called directly, so nothing is
    kept and every render draws the whole document.
    """
    from flask_customer_portal import find_customer, get_business, issue_invoice
    from flask_customer_portal.proxies import portal

    from .seed import BUSINESS_ID, MEASURED_EMAIL, MODE

    lines = [
        {"description": f"Acme Cloud add-on {n}: storage, seats and support", "unit_amount": 990}
        for n in range(1, 11)
    ]
    with app.app_context():
        business = get_business(BUSINESS_ID)
        customer = find_customer(business, MEASURED_EMAIL, mode=MODE) if business else None
        if customer is None:
            raise RuntimeError(f"no customer {MEASURED_EMAIL} to invoice")
        invoice = issue_invoice(customer, lines, currency="USD", tax=1980)
        renderer = portal.invoice_renderer
        renderer.render(invoice, locale="en")  # fonts loaded once, as in a warm worker
        took = []
        for _ in range(count):
            began = time.perf_counter()
            renderer.render(invoice, locale="en")
            took.append((time.perf_counter() - began) * 1000)
    return took


def _fetch_pdf(browser: requests.Session, origin: str, invoice: str) -> float:
    """Download an invoice's PDF; return the milliseconds it took."""
    began = time.perf_counter()
    answer = browser.get(f"{origin}/portal/billing/invoices/{invoice}.pdf", timeout=60)
    took = (time.perf_counter() - began) * 1000
    if answer.status_code != 200 or not answer.content.startswith(b"%PDF"):
        raise RuntimeError(f"PDF of {invoice}: {answer.status_code}")
    return took


# -- The machine --------------------------------------------------------------------------


def machine() -> dict[str, str]:
    def first(path: str, prefix: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    memory = first("/proc/meminfo", "MemTotal")
    try:
        ram = f"{int(memory.split()[0]) / 2**20:.1f} GiB"
    except ValueError:
        ram = memory
    os_name = "unknown"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    try:
        wrk = wrk_version()
    except RuntimeError:
        wrk = "not installed"
    return {
        "cpu": first("/proc/cpuinfo", "model name"),
        "cpus": str(_cpu_count()),
        "ram": ram,
        "os": f"{os_name}, Linux {platform.release()}",
        "python": platform.python_version(),
        "gunicorn": metadata.version("gunicorn"),
        "wrk": wrk,
        "commit": _git_commit(),
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    commit = done.stdout.strip() or "unknown"
    return commit + (" with local changes" if dirty.stdout.strip() else "")
