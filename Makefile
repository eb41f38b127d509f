# tcr — one Makefile for the build PC, the tests and the board install.
# `make demo` and `make test` do all set-up on a fresh Debian machine.

PYTHON      ?= /usr/bin/python3
VENV        ?= .venv
VPY         := $(VENV)/bin/python
PREFIX      ?= /usr/local
DESTDIR     ?=
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
PYTEST_ARGS ?=

# Debian packages the tests and the demo need (bench adds its own below).
APT_PKGS := crun skopeo umoci squashfs-tools squashfs-tools-ng nftables busybox-static \
            docker-registry openssh-server openssh-client iproute2 python3-venv python3-dev \
            zstd util-linux procps
BENCH_APT_PKGS := podman dnsperf dnsmasq-base hyperfine

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps apt-deps venv test test-unit lint demo bench profile install uninstall clean purge-state

all: test

apt-deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test,host,profile]'
	touch $@

venv: $(VENV)/.stamp

deps: apt-deps venv

test: deps
	$(VPY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(VPY) -m pytest -m 'not root' $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check target host_tools test bench
	$(VENV)/bin/mypy

demo: deps
	$(VPY) bench/../test/fixtures/demo.py

bench: deps
	@missing=$$(for p in $(BENCH_APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
	$(VPY) bench/run_all.py

profile: deps
	$(VPY) bench/profile_tcrd.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis test/fixtures/cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
