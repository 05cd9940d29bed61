"""``python -m benchmarks``: the benchmark harness; ``make bench`` runs it. See README.md."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .harness import Options, logger, run
from .settings import ROOT

DEFAULTS = Options()
#: make's variables, for the command written in the report.
MAKE_VARIABLES = {
    "scale": "BENCH_SCALE",
    "databases": "BENCH_DB",
    "duration": "BENCH_DURATION",
    "warmup": "BENCH_WARMUP",
    "rounds": "BENCH_ROUNDS",
    "compare_small": "BENCH_COMPARE_SMALL",
    "report": "BENCH_REPORT",
}


def number(text: str) -> int:
    """1000000, 1_000_000, 1m or 100k."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def databases(text: str) -> tuple[str, ...]:
    if text == "both":
        return ("sqlite", "postgresql")
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in chosen:
        if name not in ("sqlite", "postgresql"):
            raise argparse.ArgumentTypeError("sqlite, postgresql or both")
    return chosen


def flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the portal's pages against a bare baseline app (see README.md).",
    )
    p.add_argument("--scale", type=number, default=DEFAULTS.scale, help="invoices (1m, 100k)")
    p.add_argument("--db", type=databases, default=DEFAULTS.databases, dest="databases",
                   help="sqlite, postgresql or both")  # fmt: skip
    p.add_argument("--duration", type=float, default=DEFAULTS.duration, help="seconds per run")
    p.add_argument("--warmup", type=float, default=DEFAULTS.warmup, help="seconds")
    p.add_argument("--rounds", type=int, default=DEFAULTS.rounds)
    p.add_argument("--threads", type=int, default=DEFAULTS.threads)
    p.add_argument("--connections", type=int, default=DEFAULTS.connections)
    p.add_argument("--workers", type=int, default=DEFAULTS.workers)
    p.add_argument("--compare-small", type=flag, default=DEFAULTS.compare_small,
                   help="1/0: also measure a database of --small-scale invoices")  # fmt: skip
    p.add_argument("--small-scale", type=number, default=DEFAULTS.small_scale)
    p.add_argument("--deep-page", type=int, default=DEFAULTS.deep_page)
    p.add_argument("--pdf-first", type=int, default=DEFAULTS.pdf_first)
    p.add_argument("--mail-delay", type=float, default=DEFAULTS.mail_delay,
                   help="seconds the local mail server takes per message")  # fmt: skip
    p.add_argument("--renders", type=int, default=DEFAULTS.renders,
                   help="in-process renders of a ten-line invoice PDF")  # fmt: skip
    p.add_argument("--loader", choices=("wrk", "plain"), default=DEFAULTS.loader)
    p.add_argument("--plain-requests", type=int, default=DEFAULTS.plain_requests)
    p.add_argument("--report", type=Path, default=DEFAULTS.report)
    p.add_argument("--data", type=Path, default=DEFAULTS.data)
    p.add_argument("--results", type=Path, default=DEFAULTS.results)
    p.add_argument("--profile", default=None, help="profile this page instead of measuring")
    p.add_argument("--profile-repeat", type=int, default=DEFAULTS.profile_repeat)
    return p


def make_command(options: Options) -> str:
    """``make bench`` with the variables that differ from their defaults."""
    parts = ["make bench"]
    for name, variable in MAKE_VARIABLES.items():
        value, default = getattr(options, name), getattr(DEFAULTS, name)
        if value == default:
            continue
        if name == "databases":
            value = "both" if set(value) == {"sqlite", "postgresql"} else ",".join(value)
        elif name == "compare_small":
            value = int(value)
        elif name == "report":
            value = value.relative_to(ROOT) if value.is_relative_to(ROOT) else value
        parts.append(f"{variable}={shlex.quote(str(value))}")
    extra = []
    for action in parser()._actions:
        name = action.dest
        if name in MAKE_VARIABLES or name in ("help", "profile", "profile_repeat"):
            continue
        value = getattr(options, name)
        if value != getattr(DEFAULTS, name):
            extra.append(f"{action.option_strings[0]} {value}")
    if extra:
        parts.append(f"BENCH_ARGS={shlex.quote(' '.join(extra))}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    options = Options(**{k: v for k, v in vars(args).items()})
    options.report = options.report.resolve()
    options.command = make_command(options)
    if options.profile:
        from .profiling import profile

        profile(options, logger())
        return
    run(options)


if __name__ == "__main__":
    main()
