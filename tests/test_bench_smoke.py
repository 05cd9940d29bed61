"""The benchmark harness (``make bench``) at a tiny scale: it seeds, serves, signs in, reports.

The whole harness runs as ``make bench`` runs it (seeding by bulk inserts on the
migrated schema, the example store and the baseline app on gunicorn with
``deploy/gunicorn.conf.py``, a real sign-in link, page 3 of the history found
through its links, statement counts, the first PDF downloads, the workers'
memory, the ten-line invoice's renders, the report), with three differences that
keep it a few seconds long and free of timing: a few hundred invoices, a mail
server that takes 0.05 s a message instead of 2, and a plain HTTP client sending
a fixed number of requests instead of wrk for a fixed time (so ``make test``
needs no wrk). It asserts that every page answered 200, that a conditional PDF
download got 304, and that the report was written; it asserts nothing about speed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness import Options, run
from benchmarks.report import MARKER
from benchmarks.sites import PAGES


def test_the_benchmark_harness_measures_every_page(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cluster = request.getfixturevalue("pg_cluster") if backend == "postgresql" else None
    report = tmp_path / "performance.md"
    report.write_text("# Performance\n\nThe intro, kept.\n\n" + MARKER + "\n\nOld results.\n")
    options = Options(
        scale=400,
        small_scale=100,
        deep_page=3,
        databases=(backend,),
        rounds=1,
        warmup=0,
        loader="plain",
        plain_requests=6,
        connections=2,
        pdf_first=3,
        mail_delay=0.05,
        renders=3,
        report=report,
        data=tmp_path / "data",
        results=tmp_path / "results",
        command="smoke test",
    )

    result = run(options, log=lambda message: None, cluster=cluster)

    [measured] = result.backends
    assert [page.key for page in measured.pages] == [page.key for page in PAGES]
    for page in measured.pages:
        runs = {"store": page.portal, "baseline": page.baseline, "small store": page.small}
        if page.key == "billing_deep":  # the small database has 2 pages of history
            assert page.small == []
            del runs["small store"]
        for server, samples in runs.items():
            assert [s.statuses for s in samples] == [{200: 6}], (page.key, server)
        assert page.statements and page.baseline_statements, page.key
    assert measured.downloads is not None and len(measured.downloads.first_ms) == 3
    assert measured.downloads.conditional_status == 304
    assert len(measured.render_ms) == 3
    assert set(measured.memory) == {"portal", "baseline", "portal-small"}
    assert all(len(workers) == 2 for workers in measured.memory.values())
    written = report.read_text()
    assert written.startswith("# Performance\n\nThe intro, kept.\n\n" + MARKER)
    assert "Old results" not in written
    assert f"### {'SQLite' if backend == 'sqlite' else 'PostgreSQL'}" in written
    assert "| Billing history, page 3 |" in written and "Targets on" in written
    assert "ten-line invoice" in written and "Sign-in request, one client" in written
