# The two commands a newcomer runs: `make demo` and `make test`. Nothing else is needed but
# Python 3.11+ and make: uv is bootstrapped into .local/, the venv is .venv/, state is .local/.
PY ?= python3
UV_VERSION := 0.13.9
UV := .local/uv/bin/uv
PYTHON := .venv/bin/python
export DAGSTER_HOME := $(CURDIR)/.local/dagster_home

.PHONY: install demo ui ui-test soak deploy-check serve run rebuild replay test test-profile dashboard-test vendor-charts bench lint diagnose settings health watchdog discover discover-apply clean stop

$(UV):
	@mkdir -p .local
	$(PY) -m venv .local/uv
	.local/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=.venv $(UV) sync --frozen --compile-bytecode --python $(PY)
	@touch $@

install: .venv/.installed

demo:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory install && \
	$(PYTHON) -m sandbox demo; status=$$?; \
	echo "make demo took $$(( $$(date +%s) - start )) s, install included"; exit $$status

ui: install
	$(PYTHON) -m sandbox ui

# the dashboard API and its charts page as dashboard_reader (API_HOST, API_PORT; see README)
serve: install
	@$(PYTHON) -m api serve

run: install
	$(PYTHON) refresh.py

rebuild: install
	$(PYTHON) refresh.py --full-rebuild

# make backfill SOURCE=facebook FROM=2026-09-01 [TO=2026-10-30] | SOURCE=amocrm FROM=... | ALL=1
backfill: install
	$(PYTHON) -m commands.backfill $(SOURCE) $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) $(if $(ALL),--all)

# make replay SOURCE=supabase_main: re-load a source's quarantined records once their cause is fixed
replay: install
	$(PYTHON) -m commands.replay replay $(SOURCE)

# two pytest-xdist workers per CPU (TEST_WORKERS=0 for one process): each worker is a session
# with its own embedded PostgreSQL and sandbox. The suite waits more than it computes (vendors'
# rate limits, throttling, daemons' bounds, subprocesses): at one worker per CPU the CPUs were
# busy 54 % of the wall time, so a second worker per CPU fills the waits
TEST_WORKERS ?= $(shell $(PY) -c "import os; print(2 * (os.cpu_count() or 1))")
TEST_ARGS := -m "not ui and not soak" -n $(TEST_WORKERS) --dist worksteal
test: install
	$(PYTHON) -m pytest $(TEST_ARGS)

# make test, writing each module's seconds to tests/durations.json (commit it): the profile by
# which the tests are dealt to the workers; make test names the modules it has gone stale for
test-profile: install
	$(PYTHON) -m pytest $(TEST_ARGS) --write-durations

# the reliability soak: many SIGKILLs across every phase of a refresh and the larger fault matrix
# (tests/reliability/; minutes, so not part of `make test`)
soak: install
	$(PYTHON) -m pytest -m soak tests/reliability

# the Dagster UI (dg dev on sandbox state) in headless Chromium; refreshes docs/ui-*.png.
# Minutes, not seconds (it waits for the daemon's automation), so not part of `make test`.
ui-test: install
	UI_SCREENSHOTS=docs $(PYTHON) -m pytest -m ui tests/test_ui_browser.py

# deploy/ without Docker or Kubernetes: the image's install step run as a plain script into a
# temporary directory, then, with what it installed (dagster-k8s included), every YAML file
# loads, the Helm chart's instance config passes Dagster's loader, the code's definitions load
deploy-check:
	@tmp=$$(mktemp -d); cp pyproject.toml uv.lock $$tmp/ && sh deploy/image/install.sh $$tmp \
	&& $$tmp/.venv/bin/python -m deploy.check --strict \
	&& $$tmp/.venv/bin/python -c "import definitions; print('definitions load with the image\'s packages')"; \
	status=$$?; rm -rf $$tmp; exit $$status

# the page of charts in headless Chromium (Debian's `chromium`); refreshes docs/dashboard-*.png
dashboard-test: install
	DASHBOARD_SCREENSHOTS=docs $(PYTHON) -m pytest tests/test_dashboard_page.py

# re-fetch the vendored chart library (Chart.js, pinned) from the npm registry; needs npm
vendor-charts:
	sh api/vendor_charts.sh

# issue 14's figures against their targets in one run: one table, bench/results.json and
# bench/results.png; BENCH_ROWS rows for the loads, the dashboard and the school's sandbox (about
# 30 minutes here at the default million). dlt (the peer) and matplotlib go into their own
# environment, .local/bench-venv, never into uv.lock.
BENCH_ROWS ?= 1000000
bench: install
	$(PYTHON) -m bench --rows $(BENCH_ROWS)

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy resources checks assets contract sandbox bench health api deploy commands refresh.py definitions.py

stop:
	-$(PYTHON) -m resources.embedded_pg stop

clean: stop
	rm -rf .local .venv

diagnose: install
	$(PYTHON) -m commands.diagnose

# every resource with the variables it reads and those unset, never a value
settings: install
	@$(PYTHON) -m commands.settings

# exit 0 healthy, 1 unhealthy (one line per problem), 2 a setting missing; see health/probe.py
health: install
	@$(PYTHON) -m health

# probe and send one Telegram message when the health changed (deploy/ runs it every 2 minutes)
watchdog: install
	@$(PYTHON) -m health watch

discover: install
	$(PYTHON) -m contract discover

discover-apply: install
	$(PYTHON) -m contract discover --apply
