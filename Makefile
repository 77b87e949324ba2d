# Entry points. `make test` and `make sim` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STUBS := .stubs/esp32
SETUP_STAMP := $(VENV)/.setup-done
STUBS_STAMP := $(STUBS)/.setup-done
# pytest-xdist workers; the machine has 2 cores.
JOBS ?= 2

.PHONY: setup debian-packages test check-firmware lint typecheck pytest bench sim clean

setup: $(SETUP_STAMP) $(STUBS_STAMP) debian-packages

# From Debian's packages, installed here when missing (as root, or through sudo):
# the real broker the tests run (Mosquitto), and the CJK font the kiosk's bitmap
# font is made from (fonts-wqy-microhei).
debian-packages:
	@missing=""; \
	{ command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto; } || missing="mosquitto"; \
	test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || missing="$$missing fonts-wqy-microhei"; \
	test -z "$$missing" || { \
		echo "installing$$missing (Debian packages)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

$(SETUP_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed as $(PYTHON)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@# pyright fetches its JavaScript package on first use: do it now, not mid-test.
	$(VENV)/bin/pyright --version
	@touch $@

# micropython-esp32-stubs must never land in the venv (its time/socket/select
# stubs break type checking of CPython code): it goes into its own folder.
$(STUBS_STAMP): pyproject.toml $(SETUP_STAMP)
	rm -rf $(STUBS)
	$(PY) -m pip install --quiet --disable-pip-version-check --target $(STUBS) \
		"$$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml","rb"))["project"]["optional-dependencies"]["esp32-stubs"])')"
	@touch $@

check-firmware: setup
	$(PY) -m parkctl.fwcheck

lint: setup
	$(VENV)/bin/ruff check host sim tests bench
	$(VENV)/bin/ruff format --check host sim tests bench firmware
	$(VENV)/bin/ruff check --select E9,F firmware

typecheck: setup
	$(VENV)/bin/pyright -p pyrightconfig.json

pytest: setup
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile

test: check-firmware lint typecheck pytest

bench: setup
	$(PY) bench/run.py

# The default scenario: a winter night in the G60 park (sim/scenarios/winter-night.scn).
sim: setup
	@mkdir -p build
	$(VENV)/bin/parkctl sim --plot build/winter-night.png

clean:
	rm -rf $(VENV) .stubs .pytest_cache .ruff_cache
