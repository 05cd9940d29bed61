"""Profile one page in-process with pyinstrument, against the seeded database.

``make bench PROFILE=billing`` (or a path, ``PROFILE=/portal/billing``): the store
app of the run, signed in through a real link, serves the page to a test client
a few times to warm up, then ``PROFILE_REPEAT`` times under pyinstrument's
profiler. The HTML and text profiles go to ``benchmarks/.results/``; the frames
where the time goes are printed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .harness import Log, Options, databases_of
from .seed import MEASURED_EMAIL, Scale
from .settings import ROOT, store_settings
from .sites import LOGIN_PATH, PORTAL_INVOICE, csrf_token, invite, older_link, sign_in_store

#: The names PROFILE accepts besides a path.
ALIASES = (
    "overview",
    "billing",
    "billing-deep",
    "subscriptions",
    "invoice",
    "pdf",
    "pdf-first",
    "link",
    "sign-in",
)


@dataclass
class Profiled:
    html: str
    text: str
    per_request_ms: float
    self_time: list[tuple[str, float]]
    inclusive: list[tuple[str, float]]
    packages: list[tuple[str, float]]
    total: float


def profile(options: Options, log: Log) -> Profiled:
    from pyinstrument import Profiler

    from example_app import create_app
    from example_app.models import db

    backend = options.databases[0]
    target = options.profile or "billing"
    scale = Scale.of(options.scale, options.deep_page)
    with databases_of(backend, options, log, None) as dbs:
        dbs.seeded(scale)
        url = dbs.working_copy(scale, "profile")
        app = create_app(store_settings(url, "http://127.0.0.1:5000"))
        try:
            client = app.test_client()
            sign_in_store(app)(client)
            log(f"profiling {target} on {backend}, {options.profile_repeat} requests")
            send = requester(target, app, client, options, log)
            for _ in range(3):
                send()
            profiler = Profiler(interval=0.0005)
            began = time.perf_counter()
            with profiler:
                for _ in range(options.profile_repeat):
                    send()
            took = (time.perf_counter() - began) * 1000 / options.profile_repeat
        finally:
            with app.app_context():
                db.engine.dispose()
    session = profiler.last_session
    assert session is not None
    options.results.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in target).strip("-") or "page"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = options.results / f"profile-{slug}-{backend}-{stamp}"
    html, text = stem.with_suffix(".html"), stem.with_suffix(".txt")
    html.write_text(profiler.output_html())
    text.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    root = session.root_frame()
    if root is None:
        raise RuntimeError("the profile recorded nothing")
    result = Profiled(
        str(html.relative_to(ROOT) if html.is_relative_to(ROOT) else html),
        str(text.relative_to(ROOT) if text.is_relative_to(ROOT) else text),
        took,
        top_self(root),
        top_inclusive(root),
        by_package(root),
        root.time,
    )
    print(summary(result, target, backend, options.profile_repeat))
    return result


def requester(target: str, app: Any, client: Any, options: Options, log: Log) -> Callable[[], None]:
    """A function sending one request of ``target`` (an alias or a path) with ``client``."""
    if target.startswith("/"):
        return lambda: _ok(client.get(target), target)
    if target not in ALIASES:
        raise SystemExit(f"PROFILE: a path, or one of {', '.join(ALIASES)}")
    listed = PORTAL_INVOICE.findall(client.get("/portal/billing").text)
    newest = listed[0]
    paths = {
        "overview": "/portal/",
        "billing": "/portal/billing",
        "subscriptions": "/portal/subscriptions",
        "invoice": f"/portal/billing/invoices/{newest}",
        "pdf": f"/portal/billing/invoices/{newest}.pdf",
    }
    if target in paths:
        path = paths[target]
        return lambda: _ok(client.get(path), path)
    if target == "billing-deep":
        path = "/portal/billing"
        log(f"following the history's links to page {options.deep_page}")
        for _ in range(1, options.deep_page):
            older = older_link(client.get(path).text)
            if older is None:
                raise SystemExit(f"the history has fewer than {options.deep_page} pages")
            path = older
        return lambda: _ok(client.get(path), path)
    if target == "pdf-first":
        # Each request a different invoice, never downloaded before.
        page, invoices = "/portal/billing", list[str]()
        while len(invoices) < options.profile_repeat + 4:
            text = client.get(page).text
            invoices += [i for i in PORTAL_INVOICE.findall(text) if i not in invoices]
            older = older_link(text)
            if older is None:
                break
            page = older
        pending = iter(invoices[1:])
        return lambda: _ok(client.get(f"/portal/billing/invoices/{next(pending)}.pdf"), "pdf")
    if target == "link":
        path = invite(app).removeprefix(app.config["CUSTOMER_PORTAL_EXTERNAL_URL"])
        visitor = app.test_client()
        return lambda: _ok(visitor.get(path), path)
    visitor = app.test_client()
    token = csrf_token(visitor.get(LOGIN_PATH).text)
    form = {"csrf_token": token, "email": MEASURED_EMAIL}
    return lambda: _ok(visitor.post(LOGIN_PATH, data=form), LOGIN_PATH)


def _ok(response: Any, what: str) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{what}: {response.status_code}")


def _name(frame: Any) -> str:
    where = frame.file_path_short or "?"
    return f"{frame.function} ({where}:{frame.line_no})"


def top_self(root: Any, count: int = 15) -> list[tuple[str, float]]:
    """The functions with the most time spent in themselves, over the whole profile."""
    totals: dict[str, float] = defaultdict(float)
    stack = [root]
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        if not frame.is_synthetic:
            totals[_name(frame)] += frame.total_self_time
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]


#: Code of the app under test: the portal, its templates, the example store.
OURS = ("flask_customer_portal/", "example_app/")


def top_inclusive(root: Any, count: int = 20) -> list[tuple[str, float]]:
    """The portal's functions and templates with the most time in and under them."""
    totals: dict[str, float] = defaultdict(float)
    stack: list[tuple[Any, frozenset[str]]] = [(root, frozenset())]
    while stack:
        frame, above = stack.pop()
        name = _name(frame)
        ours = (frame.file_path_short or "").startswith(OURS)
        if ours and not frame.is_synthetic and name not in above:  # recursion counted once
            totals[name] += frame.time
        stack.extend((child, above | {name}) for child in frame.children)
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]


def package(path: str | None) -> str:
    """What a frame's file belongs to: a library, the portal's code or its templates."""
    if not path or path.startswith("<"):
        return ""
    if "/templates/" in path:
        return "templates (Jinja)"
    return path.split("/", 1)[0].removesuffix(".py")


def by_package(root: Any) -> list[tuple[str, float]]:
    """Time spent in each library's own code (built-ins count for their caller's library)."""
    totals: dict[str, float] = defaultdict(float)
    stack: list[tuple[Any, str]] = [(root, "other")]
    while stack:
        frame, caller = stack.pop()
        if frame.is_synthetic:  # its time is its parent's self time, counted there
            continue
        owner = package(frame.file_path_short) or caller
        totals[owner] += frame.total_self_time
        stack.extend((child, owner) for child in frame.children)
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)


def summary(result: Profiled, target: str, backend: str, repeat: int) -> str:
    lines = [
        f"Profile of {target} on {backend}: {result.per_request_ms:.1f} ms a request "
        f"(in-process, {repeat} requests, profiler on)",
        f"  HTML: {result.html}",
        f"  text: {result.text}",
        "Where the time goes (each library's own code):",
    ]
    total = result.total or 1
    lines += [
        f"  {seconds / total:6.1%}  {seconds * 1000 / repeat:6.2f} ms/request  {name}"
        for name, seconds in result.packages
        if seconds / total >= 0.005
    ]
    lines.append("The portal's code with the most time in and under it (ms a request):")
    lines += [f"  {seconds * 1000 / repeat:7.2f}  {name}" for name, seconds in result.inclusive]
    lines.append("Most time in the function itself (ms a request):")
    lines += [f"  {seconds * 1000 / repeat:7.2f}  {name}" for name, seconds in result.self_time]
    return "\n".join(lines)
