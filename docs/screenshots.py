"""Take the theming guide's screenshots (run by hand): the portal as shipped, and as
the example store wraps it.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from flask import Flask
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

import flask_customer_portal as portal
from example_app import create_app
from flask_customer_portal import migrate

HERE = Path(__file__).parent / "img"


def plain_app(folder: Path) -> Flask:
    app = Flask("plain", instance_path=str(folder))
    app.config.update(
        TESTING=True, SECRET_KEY="docs", CUSTOMER_PORTAL_EXTERNAL_URL="http://127.0.0.1"
    )
    portal.CustomerPortal(app)
    with app.app_context():
        migrate.upgrade()
        portal.create_business("Acme Cloud", public_id="acme", support_email="help@example.com")
    return app


def store_app(folder: Path) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "docs",
            "STAFF_PASSWORD": "docs",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'acme.sqlite3'}",
        }
    )
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    return app


def shoot(app: Flask, browser: object, name: str) -> None:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    page = browser.new_page(viewport={"width": 1000, "height": 700})  # type: ignore[attr-defined]
    page.goto(f"http://127.0.0.1:{server.server_port}/portal/test/login/acme")
    page.screenshot(path=str(HERE / name))
    page.close()
    server.shutdown()


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            shoot(plain_app(folder / "plain"), browser, "theming-default.png")
            shoot(store_app(folder), browser, "theming-acme.png")
            browser.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
