# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-unlimited test browser screenshots lint format train worker web beat contract clean

$(STAMP): requirements.txt requirements-worker.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Migrate, then Redis (embedded unless REDIS_URL is set), WORKERS workers and the web server.
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python -m digitsite.stack

# `make run` with every per-client limit and load shedding off: how the benchmarks run it
# (their many clients share one address and offer more than the machine can answer).
run-unlimited:
	RATE_LIMIT=0 READ_RATE_LIMIT=0 BYTE_BUDGET=0 MAX_CONNECTIONS_PER_CLIENT=0 MAX_BACKLOG=0 $(MAKE) run

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (Playwright's own download cannot work here);
# installed when missing where this user may (root with apt-get).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: chromium is not installed, so the browser tests will be skipped"

# The README's screenshots, taken by the browser tests.
screenshots: $(STAMP) browser
	SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/test_page.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Retrain the shipped model from ../shared/data (MNIST, UNIPEN pens, USPS scans; or MNIST_PATH,
# UNIPEN_PATH, USPS_PATH): about 50 minutes on 2 cores, and a few more for stage two.
train: $(STAMP)
	$(BIN)/python -m training.train

# The processes apart, for running them on different machines (REDIS_URL, DATABASE_URL set).
web: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python -m digitsite.stack web

worker: $(STAMP)
	$(BIN)/python -m digitsite.stack worker

beat: $(STAMP)
	$(BIN)/python -m digitsite.stack beat

# The outside contract check against a running `make run`.
contract:
	../shared/tools/contract-check $${URL:-http://127.0.0.1:8000}

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache
