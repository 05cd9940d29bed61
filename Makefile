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

.PHONY: demo test lint typecheck docs pytest system-packages bench bench-packages clean translations-extract translations-compile

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

# The benchmark harness (benchmarks/README.md): seeds a database (cached in
# benchmarks/.data/), serves the store and a bare baseline app with gunicorn,
# measures each page with wrk and writes docs/performance.md. BENCH_SCALE is the
# invoices (customers: a tenth); BENCH_DB sqlite, postgresql or both; seconds per
# load run; BENCH_COMPARE_SMALL=1 also measures a 1,000-invoice database.
# PROFILE=billing (or a path) profiles one page in-process with pyinstrument instead.
BENCH_SCALE ?= 1000000
BENCH_DB ?= both
BENCH_DURATION ?= 5
BENCH_WARMUP ?= 2
BENCH_ROUNDS ?= 3
BENCH_COMPARE_SMALL ?= 1
BENCH_REPORT ?= docs/performance.md
BENCH_ARGS ?=
PROFILE ?=

bench: bench-packages $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks --scale $(BENCH_SCALE) --db $(BENCH_DB) \
		--duration $(BENCH_DURATION) --warmup $(BENCH_WARMUP) --rounds $(BENCH_ROUNDS) \
		--compare-small $(BENCH_COMPARE_SMALL) --report $(BENCH_REPORT) \
		$(if $(PROFILE),--profile '$(PROFILE)') $(BENCH_ARGS)

# wrk, the load generator, and PostgreSQL's server (unless BENCH_DB=sqlite), from
# the system's packages.
bench-packages:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	[ "$(BENCH_DB)" = sqlite ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y $$missing; \
	fi

# The virtualenv, made if missing, and the package in it: the demo needs the
# package alone, the checks the dev extra. With uv where it can be had, else
# with pip; see tools/venv-install.sh.
INSTALL := PYTHON=$(PYTHON) SUDO=$(SUDO) sh tools/venv-install.sh $(VENV)

$(VENV)/.installed: pyproject.toml
	$(INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	$(INSTALL) -e '.[dev]'
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
