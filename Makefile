# Two commands on a fresh machine with Python 3.11+ and make: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test pytest test-heavy lint types demo bench bench-smoke schemas clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check shared handlers emulator function_app.py tests bench
	$(PY) -m ruff format --check shared handlers emulator function_app.py
	$(VENV)/bin/lint-imports

types: $(STAMP)
	$(PY) -m mypy

# Parallel workers for `make test`, each with its own emulator (tests/conftest.py). The suite
# mostly waits (retry back-offs, lease and lock expiries, Retry-After), so more workers than
# cores pay; `make test TEST_WORKERS=0` runs it in one process. worksteal: a worker that runs
# out takes tests queued on a busy one (the crash-point tests are long).
TEST_WORKERS ?= 8

# Lint and types run beside the suite, which mostly waits: `make test` takes the suite's time.
test: $(STAMP)
	@$(MAKE) --no-print-directory -j3 --output-sync=target lint types pytest

pytest: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

test-heavy: $(STAMP)
	$(PY) -m pytest -m heavy

demo: $(STAMP)
	$(PY) -m samples.demo

bench: $(STAMP)
	$(PY) -m bench.run

bench-smoke: $(STAMP)
	$(PY) -m bench.run --smoke

schemas: $(STAMP)
	$(PY) -m shared.messages.schemas > /dev/null

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
