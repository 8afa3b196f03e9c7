# Two commands matter: `make local` (run the product on this machine) and `make test` (every gate).
# Everything else is a building block. Each target installs what it needs, so a fresh clone works.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# Node 20 is what this machine kind ships; jsii warns about it on every synth.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/.venv/bin:$(CURDIR)/node_modules/.bin:$(PATH)
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(PYTHON) -m uv
STAGES := dev staging prod
STAGE ?= dev

.PHONY: help
help:
	@echo "make local   run the whole pipeline on this machine (no AWS account)"
	@echo "make test    lint + types + every test (unit, integration, infra, e2e)"
	@echo "make synth   cdk synth + cfn-lint for $(STAGES);  make deploy STAGE=dev"
	@echo "make bench   hot paths against references (bench/results.json);  make soak   10,000 events with faults"

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: install
install: .venv/.installed node_modules/.installed

.PHONY: lint
lint: .venv/.installed
	ruff check .
	ruff format --check .
	lint-imports

.PHONY: types
types: .venv/.installed
	mypy

# The report's e2e test draws the page in headless Chromium, a Debian package (CI runs as root).
.PHONY: chromium
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; } || { \
	  echo "make chromium: /usr/bin/chromium is missing and apt-get could not install it (needs root on Debian)"; \
	  exit 1; }

.PHONY: test
test: install chromium lint types
	pytest --cov --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=85
	$(MAKE) synth

.PHONY: synth
synth: install
	@set -e; for stage in $(STAGES); do \
	  echo "cdk synth -c stage=$$stage"; \
	  cdk synth --quiet -c stage=$$stage --output cdk.out/$$stage >/dev/null; \
	  cfn-lint cdk.out/$$stage/stripe-middleware-$$stage.template.json; \
	done

.PHONY: deploy
deploy: install
	cdk deploy -c stage=$(STAGE) $(if $(PARTNER_SOURCE),-c stripePartnerEventSource=$(PARTNER_SOURCE)) \
	  $(if $(ALARM_EMAIL),-c alarmEmail=$(ALARM_EMAIL)) $(if $(CONNECT),-c stripeConnect=true)

.PHONY: local
local: install
	stripe-middleware local $(if $(PORT),--port $(PORT))

.PHONY: bench
bench: install
	python -m bench

.PHONY: soak
soak: install
	python -m bench.soak --events 10000
	python -m bench.reconciliation_soak --transactions 10000
