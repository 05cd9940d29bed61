"""The benchmark harness: ``make bench`` (or ``python -m benchmarks``); see README.md.

It seeds a database at a chosen scale with bulk inserts (cached under
``benchmarks/.data/``), serves the example store and a bare baseline app with
gunicorn, measures each page against its baseline with wrk, and writes
``docs/performance.md``.
"""
