# `make demo` and `make test` create .venv and install into it; both are idempotent.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.veil-installed

.PHONY: demo test install lint bench browser clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[all,dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/veil demo

# Headless Chromium renders the audit report in the tests (Debian's package, root only).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests bench

bench: install
	$(PY) bench/bench_train.py

clean:
	rm -rf $(VENV) results runs .pytest_cache
