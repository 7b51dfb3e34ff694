# mediasrv — one-command set-up, test, run and benchmark targets.
# Every target installs what it needs: Debian packages with apt-get (as root) when missing,
# Python packages into $(VENV).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080
# chromium and ffmpeg: real clients of the end-to-end tests (see ../shared/TESTING.md);
# nodejs and npm: install the browser-test tools (axe-core, see package.json);
# redis-server: the cluster tests' directory (started by the test fixtures on loopback);
# coturn: the TURN server of the TURN tests and of `make run-turn` (loopback only)
APT_PACKAGES := build-essential pkg-config libssl-dev ca-certificates chromium ffmpeg nodejs npm \
	redis-server coturn
LIBSRTP := build/libsrtp/lib/libsrtp2.a
PYTEST_ARGS ?=


.PHONY: help sysdeps libsrtp install build lint typecheck test run run-turn serve bench asan-test clean

help:
	@echo "make run        start the video visit service demo on http://$(HOST):$(PORT)/visit/"
	@echo "make run-turn   the same demo with a local coturn beside it (TURN on 127.0.0.1:3478)"
	@echo "make serve      start the bare media server ('mediasrv serve') on $(HOST):$(PORT)"
	@echo "make test       install everything needed, then ruff, mypy and the whole pytest suite"
	@echo "make bench      microbenchmarks, whole-server, recording and load-generator runs"
	@echo "make asan-test  build with AddressSanitizer and run the tests once"

sysdeps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || { [ $$p = npm ] && command -v npm >/dev/null; } || missing="$$missing $$p"; \
	done; \
	$(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	$(PYTHON) -c 'import os,sys,sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# libsrtp2 on OpenSSL, static, from Debian's source package (see cext/build_libsrtp.sh)
$(LIBSRTP): cext/build_libsrtp.sh
	$(MAKE) sysdeps
	bash cext/build_libsrtp.sh build/libsrtp

libsrtp: $(LIBSRTP)

$(VENV)/.stamp-install: setup.py pyproject.toml plugins/strongauth/pyproject.toml plugins/chat/pyproject.toml plugins/proxy/pyproject.toml $(LIBSRTP)
	$(MAKE) sysdeps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "cython==3.3.1" "setuptools>=70" wheel
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	$(PY) -m pip install -q --no-build-isolation -e plugins/strongauth
	$(PY) -m pip install -q --no-build-isolation -e plugins/chat
	$(PY) -m pip install -q --no-build-isolation -e plugins/proxy
	touch $@

install: $(VENV)/.stamp-install

build: install
	$(PY) setup.py -q build_ext --inplace

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# browser-test tools from package-lock.json (axe-core for the accessibility checks)
node_modules/.stamp: package.json package-lock.json
	$(MAKE) sysdeps
	npm ci --no-audit --no-fund
	touch $@

test: build lint typecheck node_modules/.stamp
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# the video visit service demo (examples/visit_service) on the embedded default
run: build
	$(PY) -m examples.visit_service --host $(HOST) --port $(PORT)

# the demo with a local coturn (TURN over UDP and TCP on loopback, a secret made per run)
run-turn: build
	$(MAKE) sysdeps
	$(PY) -m examples.visit_service.with_coturn --host $(HOST) --port $(PORT)

# the bare media server (no plugins) on the embedded default
serve: build
	$(VENV)/bin/mediasrv serve --host $(HOST) --port $(PORT)

bench: build
	mkdir -p .benchmarks
	$(VENV)/bin/pytest bench --benchmark-enable --benchmark-only --benchmark-columns=min,median,mean,ops,rounds \
		--benchmark-sort=name --benchmark-json=.benchmarks/latest.json -p no:cacheprovider
	$(PY) -m bench.report .benchmarks/latest.json
	$(PY) -m bench.server_bench --subscribers 1,10,50,100 --seconds 5 --json .benchmarks/server.json
	$(PY) -m bench.server_bench --subscribers 10,50,100 --seconds 5 --modes simple,tcp,simple,tcp --json .benchmarks/server_tcp.json
	$(VENV)/bin/pytest tests/e2e/test_networks_browser.py -s -q -p no:cacheprovider
	$(PY) -m bench.recording_bench --subscribers 1,10 --seconds 8 --rounds 6 --json .benchmarks/recording.json
	$(PY) -m bench.loadgen --rooms 2 --publishers 1 --ramp 1,5,10,20 --seconds 5 --no-progress --json .benchmarks/loadgen.json --plot .benchmarks/loadgen.png
	$(PY) -m bench.saturation --processes 1,2 --json .benchmarks/saturation.json
	$(PY) -m bench.pipe_bench --packets 3000

# Build the extension with AddressSanitizer, run the suite once, then rebuild it normally.
asan-test: install
	CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
		$(PY) setup.py -q build_ext --inplace --force
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS); status=$$?; \
	$(PY) setup.py -q build_ext --inplace --force; exit $$status

clean:
	rm -rf build cext/*.c cext/*.html mediasrv/*.so .pytest_cache .mypy_cache .ruff_cache
