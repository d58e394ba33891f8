# `make demo` and `make test` create .venv and install into it; both are idempotent.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.veil-installed

.PHONY: demo test install lint bench system-deps clean

# uv installs from the same registry (PyPI) as pip, about 3x faster on a fresh machine (59 s against 157 s
# for the [all,dev] extras on a 2-core machine): it downloads in parallel, and torch's wheels are gigabytes.
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set, a venv without .pyc files compiles
# torch's sources again in every process, and the suite (many CLI subprocesses) took 19.4 min, not 15.
# uv does not read pip's configuration (pip.conf's indexes, certificates), so wherever it cannot install,
# pip does, as before.
UV := $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	($(PY) -m pip install -q uv && $(UV) -c constraints.txt -e ".[all,dev]") || \
	    (echo "uv could not install; installing with pip" && $(PY) -m pip install -q -c constraints.txt -e ".[all,dev]")
	@# opencv-python, opencv-python-headless and the contrib build all install cv2/: whichever comes last
	@# wins. The contrib build (same version) must, so that the HOG detector exists.
	$(PY) -m pip install -q --no-deps --force-reinstall \
	    "opencv-contrib-python-headless==$$($(PY) -m pip show opencv-python-headless | sed -n 's/^Version: //p')"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/veil demo

# Debian packages the tests use for real: Chromium (+ its WebDriver) renders the audit report and
# the dashboard, nginx balances the service's workers and terminates TLS (openssl makes the test
# certificates), ffmpeg/ffprobe check audio and metadata, PostgreSQL (its binaries under
# /usr/lib/postgresql/*/bin; pg_ctlcluster marks the package) holds the state that several `veil serve`
# hosts share, and GStreamer's RTSP server (run by the system python3-gi) plays an IP camera for veil edge.
SYSTEM_TOOLS := chromium chromedriver nginx ffmpeg ffprobe pg_ctlcluster openssl
SYSTEM_PKGS  := chromium chromium-driver nginx ffmpeg postgresql openssl python3-gi gir1.2-gst-rtsp-server-1.0 \
                gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
RTSP_CHECK   := /usr/bin/python3 tests/cloud/rtsp_server.py --check

system-deps:
	@missing=0; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing=1; done; \
	$(RTSP_CHECK) >/dev/null 2>&1 || missing=1; \
	if [ $$missing = 1 ]; then apt-get update -qq && apt-get install -y -qq $(SYSTEM_PKGS) >/dev/null; fi

# The suite runs on every logical core (at most 4), one test file per worker, so that module fixtures are
# built once. tests/conftest.py shares the prepared dataset between the workers and splits the cores'
# threads between them (oversubscribed torch thrashes). (--dist loadgroup would group files, but pytest-xdist
# 3.8 cannot set its group on pytest 9.2's node ids: every test went its own way.)
PYTEST_ARGS := -q -n logical --maxprocesses 4 --dist loadfile

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench

bench: install
	$(PY) bench/bench_train.py

clean:
	rm -rf $(VENV) results runs .pytest_cache
