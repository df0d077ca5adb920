# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Actions per second of the storefront simulator `make run` starts (0: none).
SIMULATE_RATE ?= 0.5
# `make run` is the local demo: DEBUG on, SQLite unless DATABASE_URL says otherwise.
RUN_ENV := DEBUG=$${DEBUG:-1}

.PHONY: run test venv lint format serve worker clean-db

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@python -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { \
	  echo "Python 3.12+ is needed (.python-version selects it with pyenv); found: $$(python --version)"; exit 1; }
	python -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

run: venv
	$(RUN_ENV) $(BIN)/python manage.py migrate --no-input
	$(RUN_ENV) $(BIN)/python manage.py seed_demo --if-empty
	$(RUN_ENV) $(BIN)/python manage.py create_demo_users
	@# Development VAPID keys for web push: created once, outside git (.local/ is ignored).
	@test -n "$$VAPID_PRIVATE_KEY$$VAPID_PRIVATE_KEY_FILE" || test -f .local/vapid.env || \
	  $(RUN_ENV) $(BIN)/python manage.py generate_vapid_keys --env-file .local/vapid.env
	@# The demo push service's port must be free (else: stop, naming PUSH_DEMO_SERVICE_PORT);
	@# demo subscriptions seeded for another port are moved to this one.
	$(RUN_ENV) $(BIN)/python manage.py run_demo_push_service --prepare
	@echo "Serving on http://$(HOST):$(PORT)/ with a task worker, the demo push service and a storefront simulator (Ctrl-C stops them)."
	@# On Ctrl-C, TERM or any of them ending: stop the rest of this process group (make and
	@# this shell apart: make reports the interrupt itself), once.
	@trap 'trap - EXIT INT TERM; kill $$(pgrep -g 0 | grep -vx -e $$PPID -e $$$$) 2>/dev/null; wait' EXIT INT TERM; \
	  if [ -z "$$VAPID_PRIVATE_KEY$$VAPID_PRIVATE_KEY_FILE" ]; then set -a; . ./.local/vapid.env; set +a; fi; \
	  $(RUN_ENV) $(BIN)/python manage.py run_demo_push_service & \
	  $(RUN_ENV) $(BIN)/python manage.py push_resume && \
	  $(RUN_ENV) $(BIN)/python manage.py db_worker & \
	  if [ "$(SIMULATE_RATE)" != "0" ]; then \
	    $(RUN_ENV) $(BIN)/python manage.py simulate_storefront --rate $(SIMULATE_RATE) \
	      --url http://$(HOST):$(PORT) & \
	  fi; \
	  $(RUN_ENV) $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
