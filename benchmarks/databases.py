"""Seeded databases, cached between runs, and the working copy each run measures.

A seeded database is kept under ``benchmarks/.data/`` (git-ignored), keyed by the
scale, the schema (the head revision and a hash of the shipped migrations) and
the seed's version, so a rerun does not reseed, and a new migration does. Each
run measures a copy (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL): what a run writes (sessions, links, queued mail, stored PDFs) never
reaches the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.postgres import Cluster, find_bindir

from . import seed
from .settings import store_settings

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Seeding:
    """How a seeded database came to be: when, how long it took, and whether this run did it."""

    seconds: float | None
    when: str
    cached: bool = False

    def describe(self) -> str:
        took = f"seeded in {self.seconds:.0f} s" if self.seconds is not None else "seeded"
        return f"{took} on {self.when}" + (
            " and reused from the cache" if self.cached else " by this run"
        )

    def to_text(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_text(cls, text: str | None, when: str = "an unknown date") -> Seeding:
        try:
            fields = json.loads(text or "")
            return cls(fields["seconds"], fields["when"], cached=True)
        except (ValueError, KeyError, TypeError):
            return cls(None, when, cached=True)


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def schema_revision() -> str:
    """The head revision and a hash of every shipped migration (edited ones included)."""
    from flask_customer_portal import migrate

    versions = Path(migrate.__file__).parent / "migrations" / "versions"
    digest = hashlib.sha256()
    for path in sorted(versions.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    head = re.sub(r"[^a-z0-9]", "", str(migrate.head_revision()).lower())
    return f"r{head}_{digest.hexdigest()[:8]}"


def cache_key(scale: seed.Scale) -> str:
    return f"{scale.key}_{schema_revision()}_s{seed.SEED_VERSION}"


def build_schema_and_business(url: str) -> None:
    """Run the shipped migrations (as ``flask portal db upgrade``), the store's own table,
    and create the store's business through the data API, as the demo does."""
    from example_app import create_app
    from example_app.cli import init_db
    from example_app.models import db
    from flask_customer_portal import create_business

    app = create_app(store_settings(url, "http://127.0.0.1:5000"))
    with app.app_context():
        init_db()
        create_business(
            "Acme Cloud",
            public_id=seed.BUSINESS_ID,
            invoice_prefix="ACME",
            support_email="support@example.com",
            address="Acme Cloud Inc.\n548 Market Street\nSan Francisco, CA 94104\nUnited States",
            tax_id="US EIN 12-3456789",
            brand_color="#2563eb",
            logo=(Path(app.root_path) / "static" / "acme-logo.png").read_bytes(),
        )
        db.engine.dispose()


def fill(url: str, scale: seed.Scale, backend: str, progress: Progress) -> None:
    build_schema_and_business(url)
    pk, snapshot = seed.business_snapshot(url)
    dataset = seed.Dataset(scale, pk, snapshot)
    write = seed.write_sqlite if backend == "sqlite" else seed.write_postgresql
    write(url, dataset, progress)


class SQLiteDatabases:
    """Seeded SQLite files in ``<data>/sqlite/``; working copies in ``<data>/work/``."""

    name = "sqlite"

    def __init__(self, data: Path, progress: Progress) -> None:
        self.folder = data / "sqlite"
        self.work = data / "work"
        self.progress = progress

    def __enter__(self) -> SQLiteDatabases:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def version(self) -> str:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"

    def seeded(self, scale: seed.Scale) -> Seeding:
        """Make sure the seeded file exists (seed it if not); say how it was made."""
        key = cache_key(scale)
        target = self.folder / f"{key}.sqlite3"
        about = self.folder / f"{key}.json"
        if target.exists():
            self.progress(f"sqlite: cached {target.relative_to(self.folder.parents[2])}")
            modified = datetime.fromtimestamp(target.stat().st_mtime, UTC).strftime("%Y-%m-%d")
            return Seeding.from_text(about.read_text() if about.exists() else None, modified)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f"{scale.key}_*"):  # the same scale, an older schema
            stale.unlink()
        partial = self.folder / f"{key}.partial"
        partial.unlink(missing_ok=True)
        began = time.perf_counter()
        self.progress(f"sqlite: seeding {scale.describe()}")
        fill(f"sqlite:///{partial}", scale, "sqlite", self.progress)
        partial.rename(target)
        took = time.perf_counter() - began
        self.progress(f"sqlite: seeded in {took:.0f} s ({seed.file_size(target)})")
        made = Seeding(round(took, 1), today())
        about.write_text(made.to_text())
        return made

    def working_copy(self, scale: seed.Scale, label: str) -> str:
        self.work.mkdir(parents=True, exist_ok=True)
        copy = self.work / f"{label}-{os.getpid()}.sqlite3"
        shutil.copyfile(self.folder / f"{cache_key(scale)}.sqlite3", copy)
        return f"sqlite:///{copy}"

    def size(self, scale: seed.Scale) -> str:
        return seed.file_size(self.folder / f"{cache_key(scale)}.sqlite3")


class PostgreSQLDatabases:
    """Seeded databases in a PostgreSQL cluster kept in ``<data>/postgresql-<major>/``.

    The cluster is tests/postgres.py's (fsync off, trust on 127.0.0.1, run as the
    ``postgres`` user under root), started for the run and stopped after it; its
    data folder stays. A cluster given instead (the test suite's) is used as is.
    """

    name = "postgresql"

    def __init__(self, data: Path, progress: Progress, cluster: Any | None = None) -> None:
        self.data = data
        self.progress = progress
        self.given = cluster
        self.cluster: Any = cluster
        self.copies: list[str] = []

    def __enter__(self) -> PostgreSQLDatabases:
        if self.cluster is None:
            bindir = find_bindir()
            if bindir is None:
                raise RuntimeError("PostgreSQL's server is not installed (make bench installs it)")
            major = Path(bindir).parts[-2]
            self.cluster = CachedCluster(bindir, self.data / f"postgresql-{major}")
            self.cluster.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for name in self.copies:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            if self.given is None:
                self.cluster.stop()

    def _admin(self, statement: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.cluster.port,
            user=self.cluster.user,
            dbname="postgres",
            autocommit=True,
        ) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def _databases(self) -> set[str]:
        return {row[0] for row in self._admin("SELECT datname FROM pg_database")}

    def version(self) -> str:
        return "PostgreSQL " + str(self._admin("SHOW server_version")[0][0])

    def seeded(self, scale: seed.Scale) -> Seeding:
        """Make sure the seeded database exists (seed it if not); say how it was made."""
        name = f"seed_{cache_key(scale)}"
        existing = self._databases()
        if name in existing:
            self.progress(f"postgresql: cached database {name}")
            comment = self._admin(
                f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                f"WHERE datname = '{name}'"
            )[0][0]
            return Seeding.from_text(comment)
        for stale in existing:
            if stale.startswith(f"seed_{scale.key}_"):
                self._admin(f'DROP DATABASE "{stale}" WITH (FORCE)')
        partial = f"partial_{cache_key(scale)}"
        began = time.perf_counter()
        self.progress(f"postgresql: seeding {scale.describe()}")
        self._admin(f'DROP DATABASE IF EXISTS "{partial}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{partial}"')
        fill(self.cluster.url(partial), scale, "postgresql", self.progress)
        self._admin(f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
        took = time.perf_counter() - began
        self.progress(f"postgresql: seeded in {took:.0f} s ({self.size(scale)})")
        made = Seeding(round(took, 1), today())
        self._admin(f"COMMENT ON DATABASE \"{name}\" IS '{made.to_text()}'")
        return made

    def working_copy(self, scale: seed.Scale, label: str) -> str:
        name = f"work_{label}_{os.getpid()}"
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        # A file copy of the seeded database (it has no connections: every engine is disposed).
        new = int(self._admin("SHOW server_version_num")[0][0]) >= 150000
        strategy = " STRATEGY FILE_COPY" if new else ""
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "seed_{cache_key(scale)}"{strategy}')
        self.copies.append(name)
        return str(self.cluster.url(name))

    def size(self, scale: seed.Scale) -> str:
        size = self._admin(f"SELECT pg_database_size('seed_{cache_key(scale)}')")[0][0]
        return f"{int(size) / 2**20:,.0f} MB"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CachedCluster(Cluster):
    """tests/postgres.py's cluster in a folder that stays: initdb once, start and stop each run."""

    def __init__(self, bindir: str, root: Path) -> None:
        # Not Cluster.__init__: it makes a temporary folder.
        root.mkdir(parents=True, exist_ok=True)
        self.bindir = bindir
        self.root = str(root)
        self.data = str(root / "data")
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        if not (Path(self.data) / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            super().start()  # initdb, then start
            return
        if (Path(self.data) / "postmaster.pid").exists():
            # Left running by an interrupted run: stop it (a stale file makes this fail).
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            except RuntimeError:
                pass
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", self.data, "-o", options, "-w", "-t", "60",
            "-l", os.path.join(self.root, "server.log"), "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
