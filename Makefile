# `make demo` and `make test` create .venv and install into it; both are idempotent.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.veil-installed

.PHONY: demo test install lint bench system-deps clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[all,dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/veil demo

# Debian packages the tests use for real: Chromium (+ its WebDriver) renders the audit report and
# the dashboard, nginx balances the service's workers, ffmpeg/ffprobe check audio and metadata,
# PostgreSQL (its binaries under /usr/lib/postgresql/*/bin; pg_ctlcluster marks the package) holds the
# state that several `veil serve` hosts share; openssl makes the TLS test's self-signed certificate.
SYSTEM_TOOLS := chromium chromedriver nginx ffmpeg ffprobe pg_ctlcluster openssl
SYSTEM_PKGS  := chromium chromium-driver nginx ffmpeg postgresql openssl

system-deps:
	@missing=0; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing = 1 ]; then apt-get update -qq && apt-get install -y -qq $(SYSTEM_PKGS) >/dev/null; fi

test: install system-deps
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests bench

bench: install
	$(PY) bench/bench_train.py

clean:
	rm -rf $(VENV) results runs .pytest_cache
