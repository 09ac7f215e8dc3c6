# Two commands for a fresh machine:  make run   and   make test
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa
MODEL := models/clinic.tar.gz
export PYTHONPATH := $(CURDIR)
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export PYTHONWARNINGS := ignore

TRAINING_INPUTS := config.yml domain.yml $(wildcard data/nlu/*.yml data/stories/*.yml data/rules/*.yml) \
	$(wildcard bot/components/*.py bot/triage/*.py) bot/procedures.py bot/sentence_encoder.py bot/language.py bot/vocabulary.py knowledge/triage_rules.yml knowledge/procedures.yml knowledge/not_covered.yml bot/not_covered.py

.PHONY: help setup setup-test run run-cluster shell test test-fast bench lint validate model staff-user lock clean

help:
	@echo "make run         set up, train if needed, start the bot, the website demo and the staff review app"
	@echo "make test        set up and run every check (lint, data validation, unit, e2e, browser, accuracy)"
	@echo "make test-fast   unit tests only: no servers, no browser, no PostgreSQL, no trained model"
	@echo "make run-cluster N=3  the bot as N Rasa servers behind nginx over PostgreSQL and Redis"
	@echo "make shell       chat with the bot in this terminal"
	@echo "make bench       print accuracy, latency, memory and timing figures"
	@echo "make staff-user  create a staff account for the review app (USERNAME=...)"

$(VENV)/.lock-installed: requirements.lock requirements-encoder.txt scripts/setup.sh
	@bash scripts/setup.sh

setup: $(VENV)/.lock-installed

# Browser (Debian chromium), website widget packages (npm) and a PostgreSQL for the review tests.
setup-test: setup
	@bash scripts/setup_test_deps.sh

# Rasa's own notes (domain entries set by components, third-party warnings) go to results/train.log,
# printed in full only when training fails.
$(MODEL): $(VENV)/.lock-installed $(TRAINING_INPUTS)
	@mkdir -p models results
	@echo "Training the model (about a minute) ..."
	@$(PY) -m bot.devtools.quiet_rasa train --fixed-model-name clinic --out models --quiet > results/train.log 2>&1 \
	  || { cat results/train.log; echo "FAILED: rasa train (log above, also in results/train.log)"; exit 1; }
	@touch $(MODEL)
	@echo "Model trained: $(MODEL) (Rasa's notes in results/train.log)"

model: $(MODEL)

run: setup $(MODEL)
	@bash scripts/setup_web_deps.sh
	@bash scripts/run.sh

# N Rasa servers behind nginx over PostgreSQL + Redis (scripts/run_cluster.sh, bot/devtools/cluster.py).
N ?= 3
run-cluster: setup $(MODEL)
	@bash scripts/run_cluster.sh $(N)

shell: setup $(MODEL)
	@bash scripts/run.sh shell

validate: setup
	$(RASA) data validate --fail-on-warnings --quiet

lint: setup
	$(VENV)/bin/ruff check bot actions tests scripts

test: setup-test $(MODEL)
	@bash scripts/test.sh

# The unit tier: every test without a pytest marker for a server, the browser or PostgreSQL (see
# pyproject.toml); the review tests write their conversations in code instead of through the real bot.
UNIT_TESTS := not (stack or browser or postgres or server)
test-fast: setup
	REVIEW_TEST_FILL=code REVIEW_TEST_POSTGRES=0 $(PY) -m pytest tests -q -p no:cacheprovider -m "$(UNIT_TESTS)"

bench: setup-test $(MODEL)
	$(PY) scripts/bench.py

staff-user: setup
	@test -n "$(USERNAME)" || { echo "usage: make staff-user USERNAME=name"; exit 2; }
	$(PY) -m bot.review create-user "$(USERNAME)"

# Re-pin every package after editing requirements.in (needs network to PyPI).
lock: setup
	rm -rf /tmp/lock-venv && $(PY) -m venv /tmp/lock-venv
	/tmp/lock-venv/bin/pip install --quiet "pip<24.1" && /tmp/lock-venv/bin/pip install --quiet -r requirements.in
	/tmp/lock-venv/bin/pip check
	(echo "# Every Python package, pinned. Regenerate with \`make lock\` after changing requirements.in."; \
	 /tmp/lock-venv/bin/pip freeze) > requirements.lock

clean:
	rm -rf models results artifacts .pytest_cache
