"""The report: docs/performance.md's results section, and the summary printed after a run.

Everything above :data:`MARKER` in the report is kept (the hand-written intro);
everything below it is replaced by each run.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from .seed import MEASURED_EMAIL

if TYPE_CHECKING:
    from .harness import BackendRun, RunResult
    from .load import Sample

MARKER = (
    "<!-- Everything below this line is written by `make bench` (benchmarks/report.py); "
    "edit the text above it only. -->"
)
DEFAULT_INTRO = "# Performance\n\n"
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
#: The targets of the issue.
RATIO_TO_BASELINE = 0.5
PAGE_P99_MS = 50.0
DEEP_PAGE_COST = 1.2
FULL_DATABASE_COST = 1.3
SIGN_IN_P99_MS = 20.0
RENDER_MS = 10.0
WORKER_MB = 150.0


def write(result: RunResult, path: Path) -> None:
    """Replace the results section of ``path`` (created if missing), keeping its intro."""
    intro = DEFAULT_INTRO
    if path.exists():
        text = path.read_text()
        intro = text[: text.index(MARKER)] if MARKER in text else text.rstrip() + "\n\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(intro + MARKER + "\n\n" + results(result))


# -- Figures ------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else None


def rps(samples: list[Sample]) -> float | None:
    return median([s.rps for s in samples])


def p50(samples: list[Sample]) -> float | None:
    return median([s.p50_ms for s in samples])


def p99(samples: list[Sample]) -> float | None:
    return median([s.p99_ms for s in samples])


def paired(numerator: list[Sample], denominator: list[Sample]) -> float | None:
    """The median over rounds of ``numerator``'s requests/s over ``denominator``'s, same round."""
    return median([a.rps / b.rps for a, b in zip(numerator, denominator, strict=False) if b.rps])


def cost(page: list[Sample], reference: list[Sample]) -> float | None:
    """How many times ``reference``'s cost (time per request at saturation) ``page`` costs."""
    return paired(reference, page)


def errors(samples: list[Sample]) -> int:
    return sum(s.errors for s in samples)


def number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if digits == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


# -- Markdown -----------------------------------------------------------------------------


def results(result: RunResult) -> str:
    options = result.options
    minutes = result.seconds / 60
    machine = result.machine
    out = [
        "## Results",
        "",
        f"Measured on {result.started:%Y-%m-%d at %H:%M} UTC, at commit {machine['commit']}, "
        f"with `{options.command}`. The run took {minutes:.0f} minutes.",
        "",
        "| Machine | |",
        "|---|---|",
        f"| CPU | {machine['cpu']}, {machine['cpus']} CPUs |",
        f"| RAM | {machine['ram']} |",
        f"| OS | {machine['os']} |",
        f"| Python | {machine['python']} |",
        f"| Databases | {', '.join(run.version for run in result.backends)} |",
        f"| Servers | gunicorn {machine['gunicorn']}, {options.workers} sync workers each |",
        f"| Load | {load_line(result)} |",
        "",
    ]
    for run in result.backends:
        out += backend(run, result)
    return "\n".join(out).rstrip() + "\n"


def load_line(result: RunResult) -> str:
    options = result.options
    if options.loader == "wrk":
        return (
            f"{result.machine['wrk']}: {options.threads} threads, {options.connections} "
            f"connections, {options.rounds} rounds of {options.duration:g} s per page "
            f"(after a {options.warmup:g} s warm-up)"
        )
    return (
        f"a plain Python HTTP client (smoke run): {options.plain_requests} requests per page, "
        f"{options.rounds} rounds"
    )


def backend(run: BackendRun, result: RunResult) -> list[str]:
    name = NAMES.get(run.backend, run.backend)
    options = result.options
    how = run.seeding["full"].describe()
    out = [
        f"### {name}",
        "",
        f"{run.version}. The database: {run.scale.describe()}; {run.database_size}, {how}. "
        f"This part of the run took {run.seconds / 60:.0f} minutes.",
        "",
    ]
    if run.small_scale is not None:
        out += [
            f"The small database of the last column: {run.small_scale.describe()}.",
            "",
        ]
    out += [
        "| Page | Requests/s | × baseline | p50 ms | p99 ms | Statements "
        "| Baseline req/s | Baseline p99 ms | Baseline statements | Cost × small DB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for page in run.pages:
        if not page.portal:
            continue
        failed = errors(page.portal) + errors(page.baseline)
        warning = f" ⚠ {failed} errors" if failed else ""
        out.append(
            f"| {page.label} | {number(rps(page.portal), 0)}{warning} "
            f"| {times(paired(page.portal, page.baseline))} "
            f"| {number(p50(page.portal))} | {number(p99(page.portal))} "
            f"| {number(page.statements, 0)} "
            f"| {number(rps(page.baseline), 0)} | {number(p99(page.baseline))} "
            f"| {number(page.baseline_statements, 0)} "
            f"| {times(cost(page.portal, page.small)) if page.small else '—'} |"
        )
    out += [
        "",
        f"Requests/s, p50 and p99: the median of the {options.rounds} rounds. × baseline: the "
        "store's requests/s over the baseline's in the same round (median). Cost × small DB: "
        "the time a request of the page takes at full load on this database over the same "
        "page on the small database, measured in the same round. Statements: the SQL "
        "statements one request of a warm worker sends.",
        "",
    ]
    out += downloads(run)
    out += memory(run)
    out += targets(run, result)
    return out


def downloads(run: BackendRun) -> list[str]:
    d = run.downloads
    if d is None:
        return []

    def row(label: str, values: list[float], statements: int | None) -> str:
        ordered = sorted(values)
        worst = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else None
        return (
            f"| {label} | {number(median(values))} | {number(worst)} "
            f"| {number(statistics.fmean(values) if values else None)} "
            f"| {number(statements, 0)} |"
        )

    repeated = next((p.statements for p in run.pages if p.key == "pdf"), None)
    return [
        f"Invoice PDFs downloaded one at a time by one client, signed in as {MEASURED_EMAIL}:",
        "",
        "| Download | p50 ms | p99 ms | mean ms | Statements |",
        "|---|--:|--:|--:|--:|",
        row(f"First: {d.count} distinct invoices, once each", d.first_ms, d.first_statements),
        row(f"Repeated: the newest invoice, {d.count} times", d.repeated_ms, repeated),
        "",
        f"The newest invoice's PDF asked for again with its ETag (`If-None-Match`): "
        f"{d.conditional_status}.",
        "",
    ]


def memory(run: BackendRun) -> list[str]:
    out = [
        "Resident memory (RSS) of each gunicorn worker after the run:",
        "",
        "| Server | Workers' RSS MB |",
        "|---|---|",
    ]
    for name, sizes in run.memory.items():
        figures = ", ".join(f"{mb:.0f}" for _, mb in sorted(sizes.items())) or "—"
        out.append(f"| {name} | {figures} |")
    return [*out, ""]


def targets(run: BackendRun, result: RunResult) -> list[str]:
    pages = {page.key: page for page in run.pages}
    rows: list[tuple[str, str, bool | None]] = []

    def verdict(*checks: bool | None) -> bool | None:
        return None if any(c is None for c in checks) else all(bool(c) for c in checks)

    def below(value: float | None, limit: float) -> bool | None:
        return None if value is None else value < limit

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def at_least(value: float | None, limit: float) -> bool | None:
        return None if value is None else value >= limit

    for key in ("overview", "billing", "subscriptions"):
        page = pages.get(key)
        if page is None or not page.portal:
            continue
        ratio, worst = paired(page.portal, page.baseline), p99(page.portal)
        rows.append(
            (
                f"{page.label}: ≥ {RATIO_TO_BASELINE}× the baseline's requests/s, "
                f"p99 < {PAGE_P99_MS:g} ms",
                f"{times(ratio)}, p99 {number(worst)} ms",
                verdict(at_least(ratio, RATIO_TO_BASELINE), below(worst, PAGE_P99_MS)),
            )
        )
    first, deep = pages.get("billing"), pages.get("billing_deep")
    deep_cost = cost(deep.portal, first.portal) if first and deep and deep.portal else None
    rows.append(
        (
            f"Billing history page {result.options.deep_page}: ≤ {DEEP_PAGE_COST}× "
            "the cost of page 1",
            times(deep_cost),
            at_most(deep_cost, DEEP_PAGE_COST),
        )
    )
    if run.small_scale is not None:
        compared = [(page.label, cost(page.portal, page.small)) for page in run.pages if page.small]
        known = [(label, c) for label, c in compared if c is not None]
        if known:
            label, worst_cost = max(known, key=lambda item: item[1])
            rows.append(
                (
                    f"Full database: each page ≤ {FULL_DATABASE_COST}× its cost on the "
                    f"{run.small_scale.invoices:,}-invoice database",
                    f"worst: {label}, {times(worst_cost)}",
                    at_most(worst_cost, FULL_DATABASE_COST),
                )
            )
    pdf, invoice = pages.get("pdf"), pages.get("invoice")
    pdf_cost = cost(pdf.portal, invoice.portal) if pdf and invoice and pdf.portal else None
    rows.append(
        (
            "Repeated PDF download: costs no more than a portal page (the invoice's page)",
            f"{times(pdf_cost)} the invoice page's cost",
            at_most(pdf_cost, 1.0),
        )
    )
    conditional = run.downloads.conditional_status if run.downloads else None
    rows.append(
        (
            "Invoice PDF: a conditional request with its ETag gets 304",
            str(conditional or "—"),
            None if conditional is None else conditional == 304,
        )
    )
    render = median(run.render_ms)
    rows.append(
        (
            f"Invoice PDF: median render of a ten-line invoice < {RENDER_MS:g} ms",
            f"{number(render)} ms ({len(run.render_ms)} renders, in-process)",
            below(render, RENDER_MS),
        )
    )
    sign_in = pages.get("sign_in")
    loaded = p99(sign_in.portal) if sign_in and sign_in.portal else None
    alone = p99(sign_in.alone) if sign_in and sign_in.alone else None
    delay, connections = result.options.mail_delay, result.options.connections
    for label, value in ((f"{connections} connections", loaded), ("one client", alone)):
        rows.append(
            (
                f"Sign-in request, {label}: p99 < {SIGN_IN_P99_MS:g} ms while the mail "
                f"server takes {delay:g} s a message",
                f"p99 {number(value)} ms",
                below(value, SIGN_IN_P99_MS),
            )
        )
    rows.append(
        (
            "The mail was sent meanwhile (by the stores' mail threads)",
            f"{run.mail_received:,} messages accepted by the mail server",
            run.mail_received > 0,
        )
    )
    store = [
        mb for name, sizes in run.memory.items() if name != "baseline" for mb in sizes.values()
    ]
    largest = max(store) if store else None
    rows.append(
        (
            f"Each worker of the store: < {WORKER_MB:g} MB resident",
            f"largest {number(largest, 0)} MB",
            below(largest, WORKER_MB),
        )
    )
    out = [
        f"Targets on {NAMES.get(run.backend, run.backend)}:",
        "",
        "| Target | Measured | |",
        "|---|---|---|",
    ]
    out += [f"| {target} | {measured} | {verdict_text(met)} |" for target, measured, met in rows]
    return [*out, ""]


def verdict_text(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "**not met**"
