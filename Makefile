# The two commands: `make demo` and `make test`. Both work on a fresh Debian
# machine with Python 3.11; they install what is missing.

PYTHON ?= python3
VENV ?= .venv
PORT ?= 5000
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debug mode marks a development store: links to 127.0.0.1, mail kept on a
# local page. The interactive debugger stays off.
FLASK := PORT=$(PORT) $(BIN)/flask --app example_app --debug

.PHONY: demo test lint typecheck docs pytest system-packages clean translations-extract translations-compile

demo: $(VENV)/.installed
	$(FLASK) seed-demo
	@echo
	@echo "Acme Cloud runs on http://127.0.0.1:$(PORT)/ (Ctrl+C stops it)."
	$(FLASK) run --port $(PORT) --no-debugger

test: system-packages $(VENV)/.installed-dev lint typecheck docs pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# O2: security lint, offline; medium severity and up (asserts are invariants here).
	$(BIN)/bandit --quiet --recursive --severity-level medium flask_customer_portal example_app

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

docs: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict --quiet --site-dir "$$(mktemp -d)"

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

# PostgreSQL's server, Redis and Chromium for the test suite, from the system's packages.
system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# Translations: extract every message into the catalogue template and merge it
# into the pt_BR and es catalogues; compile them (the .mo files ship in the package).
translations-extract: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --add-comments=Translators: \
		--project=flask-customer-portal --version=0.1.0 -w 100 \
		-o flask_customer_portal/translations/customer_portal.pot flask_customer_portal
	$(BIN)/pybabel update -i flask_customer_portal/translations/customer_portal.pot \
		-d flask_customer_portal/translations -D customer_portal -w 100 --ignore-obsolete

translations-compile: $(VENV)/.installed-dev
	$(BIN)/pybabel compile -d flask_customer_portal/translations -D customer_portal --statistics

clean:
	rm -rf $(VENV) instance example_app/instance site .pytest_cache .mypy_cache .ruff_cache
