# Consent Vault: `make run` to try it, `make test` to check it. `make help` lists every target.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)
export VAULT_DATA_DIR ?= ./var

.PHONY: help install run agency serve demo test lint unit bench bench-log faults load schema screenshots clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install pinned dependencies

run: $(STAMP) ## migrate, create the demo population if empty, serve on http://127.0.0.1:8000
	$(BIN)/vault db upgrade
	$(BIN)/vault demo --if-empty
	$(BIN)/vault serve

agency: $(STAMP) ## the sample agency on http://127.0.0.1:8001, built on sdk/python (start `make run` first)
	PYTHONPATH=sdk/python $(BIN)/python -m sample_agency

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint ## lint, check policies/, then the whole suite (PostgreSQL too when VAULT_TEST_POSTGRES_URL is set)
	$(BIN)/vault policy check
	$(BIN)/pytest -n 2 --dist loadfile --ignore=tests/browser
	$(BIN)/pytest tests/browser

bench: $(STAMP) ## benchmarks; each prints its figures (a few minutes at the default sizes)
	$(BIN)/python bench/issue.py
	$(BIN)/python bench/graphql_read.py

bench-log: $(STAMP) ## the access log at 10^4 and 10^6 events: appends, integration, proofs, verify (SIZES= to change)
	$(BIN)/python bench/log.py $(if $(SIZES),--sizes $(SIZES))

KILLS ?= 20
MINUTES ?= 2
BENCH_POSTGRES ?= $(or $(VAULT_BENCH_POSTGRES_URL),postgresql://postgres@127.0.0.1:5432/postgres)

faults: $(STAMP) ## kill -9 every worker KILLS times (20) under traffic, then the leader mid-integration; check invariants
	$(BIN)/python bench/faults.py --database sqlite --workers 1 --kills $(KILLS)
	$(BIN)/python bench/faults.py --database postgresql --workers 2 --kills $(KILLS) --postgres-url $(BENCH_POSTGRES)
	$(BIN)/python bench/faults.py --target sequencer --database sqlite --workers 1 --kills $(KILLS)
	$(BIN)/python bench/faults.py --target sequencer --database postgresql --workers 2 --kills $(KILLS) --postgres-url $(BENCH_POSTGRES)

load: $(STAMP) ## open-loop HTTP mix for MINUTES (2) on SQLite and PostgreSQL, then /readyz under 6x1,000 verifications
	$(BIN)/python bench/load.py --database sqlite --workers 1 --minutes $(MINUTES)
	$(BIN)/python bench/load.py --database postgresql --workers 2 --minutes $(MINUTES) --postgres-url $(BENCH_POSTGRES)
	$(BIN)/python bench/load.py --database sqlite --workers 1 --minutes 1 --warmup 0 --scale 0 --verify-storm

SHOTS := login-zh-360 home-zh-360 licences-zh-360 licence-zh-360 consent-backchannel-zh-360 inbox-zh-360 \
	grants-zh-360 activity-zh-360 proof-zh-360 representatives-zh-360 consent-enterprise-zh-360 \
	licences-en-1280 consent-backchannel-en-1280 grants-en-1280 activity-en-1280 \
	console-zh-1280 console-charts-zh-1280 console-audit-verified-zh-1280 console-zh-360 \
	consent-full-or-masked-zh-360 link-expired-zh-360 consent-expired-zh-360 inbox-company-badge-zh-360 \
	consent-switch-zh-360 grants-approved-zh-360 grants-withdraw-all-zh-360 grants-withdrawn-zh-360 \
	grants-history-en-1280 activity-history-zh-360 activity-history-en-1280 console-owner-en-1280 \
	console-grant-zh-360 console-charts-history-en-1280 \
	consent-done-zh-360 consent-done-en-1280 consent-refused-zh-360 representatives-ended-zh-360 \
	consent-agent-ended-zh-360 home-agent-ended-zh-360 verify-in-force-zh-360 showing-expired-zh-360 \
	verify-export_ok-en-1280 notifications-zh-360 notification-settings-zh-360 \
	sample-agency-form-en-1280 sample-agency-counter-en-1280 sample-agency-check-en-1280 sample-agency-verify-en-1280

screenshots: $(STAMP) ## refresh docs/screenshots from the browser tests
	$(BIN)/pytest -q tests/browser
	mkdir -p docs/screenshots
	for s in $(SHOTS); do cp test-output/screenshots/$$s.png docs/screenshots/; done

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) var
