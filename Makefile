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

# Debian packages the tests and the demo need (bench adds its own below). python3-pip (with
# python3-setuptools and python3-wheel): test_install and test_pip_scripts build tcr offline.
APT_PKGS := crun skopeo umoci squashfs-tools squashfs-tools-ng nftables busybox-static \
            docker-registry openssh-server openssh-client iproute2 python3-venv python3-dev \
            python3-pip zstd util-linux procps tini
BENCH_APT_PKGS := podman dnsperf dnsmasq-base hyperfine xfsprogs
# make check-recipes: Buildroot's host tools and check-package (python3-magic, flake8,
# shellcheck), a Linux Kconfig tree, bitbake's host tools and locale, systemd-analyze
RECIPES_APT_PKGS := build-essential bc bison flex rsync cpio unzip file wget bzip2 xz-utils \
            python3-magic python3-flake8 shellcheck linux-source-6.1 chrpath diffstat gawk \
            lz4 zstd git locales systemd util-linux
# the vendored upstream tarballs (default: ../shared/vendor beside the checkout; CI has a copy there)
VENDOR_DIR  ?=
# make board-test: an emulated board built from the Debian mirror (ARCH=arm64|armhf|x86_64),
# or a real one (BOARD=ssh://root@board). The root file system is cached outside the clone.
BOARD_APT_PKGS := mmdebstrap qemu-user-static qemu-system-arm qemu-system-x86 e2fsprogs umoci \
                  openssh-client python3-pip python3-setuptools
ARCH        ?= arm64
BOARD       ?=
BOARD_CACHE ?= /var/cache/tcr-board
BOARD_ARGS  ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps apt-deps venv test test-unit lint demo bench profile install uninstall clean purge-state \
        check-recipes board-test

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
	$(VPY) test/demo.py

bench: deps
	@missing=$$(for p in $(BENCH_APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
	$(VPY) bench/run_all.py

profile: deps
	$(VPY) bench/profile_tcrd.py

# The board recipes with the real tools, offline: Buildroot (check-package, defconfig,
# savedefconfig, printvars, show-info), the kernel fragment in a real Kconfig tree, bitbake
# -p/-g as an unprivileged user, oelint-adv, shellcheck, systemd-analyze verify.
# BUILDROOT_DIR="dir ..." and YOCTO_LAYERS_DIR=dir replace the tarballs of $(VENDOR_DIR).
check-recipes: venv
	@missing=$$(for p in $(RECIPES_APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
	@$(VPY) -c 'import oelint_adv' 2>/dev/null || $(VPY) -m pip install -q -e '.[test,host,profile,recipes]'
	$(SUDO) env BUILDROOT_DIR="$(BUILDROOT_DIR)" YOCTO_LAYERS_DIR="$(YOCTO_LAYERS_DIR)" \
	  $(VPY) test/recipes/check_recipes.py $(if $(VENDOR_DIR),--vendor "$(VENDOR_DIR)")

# Each stage prints how long it took; docs/board-integration.md has the timings.
# BOARD_ARGS="--skip powercut,verity,busybox,bench" leaves stages out; BOARD_ARGS=--serve boots
# the emulated board and keeps it up for a run with BOARD=ssh://root@127.0.0.1:PORT.
board-test: deps
	@missing=$$(for p in $(BOARD_APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
	$(SUDO) $(VPY) test/board/board_test.py --arch $(ARCH) --cache $(BOARD_CACHE) $(if $(BOARD),--board $(BOARD)) $(BOARD_ARGS)

# ---- install / uninstall (offline: no dependency is fetched) ----------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=...] [INIT=both|systemd|sysv|none] [PYTHON=...]
#              [BYTECODE_ONLY=1 [BOARD_ZIP_FLAGS=...]] [TARGET_PYTHON=...]
# The package goes into the site directory that $(PYTHON) searches under $(PREFIX) (Debian:
# dist-packages; elsewhere site-packages). Dependencies (dnslib, PySquashfsImage) come from the
# distribution or Buildroot/Yocto, never from here. Data in /var/lib/tcr is never touched;
# tcr-purge removes it on purpose.
# BYTECODE_ONLY=1 is the board install (Buildroot's and Yocto's recipes use it): the device
# package only, as one zip of byte code, tcr.zip (~376 kB; host_tools/tcr_host/boardzip.py: no
# sources, docstrings, asserts, column tables or annotations; line tables name each function's
# first line; short local names; all but the client's start-up modules deflated against one shared
# dictionary and read by the zip's own loader, host_tools/tcr_host/zipload.py), with tcr and tcrd
# but no tcr_host and no tcr-create-image. $(PYTHON) compiles it and must be the board's Python
# version (Buildroot's host-python3, Yocto's python3-native); TARGET_PYTHON is the board's
# interpreter path.
BINDIR      ?= $(PREFIX)/bin
INITDIR     ?= $(SYSCONFDIR)/init.d
INIT        ?= both
BYTECODE_ONLY ?=
# BOARD_ZIP_FLAGS: "--exclude tcr/compose" (no `tcr compose` on the board, -21 kB); for debugging
# on a board "--exact-lines" (tracebacks name the statement's line, +35 kB), "--keep-local-names"
# (+8 kB), "--plain" (one .pyc per module, zipimport alone, +80 kB; docs/board-integration.md)
BOARD_ZIP_FLAGS ?=
TARGET_PYTHON ?= $(PYTHON)
PYSITEDIR   ?= $(shell $(PYTHON) -c 'import sys, sysconfig; p = "$(PREFIX)".rstrip("/") + "/"; \
  d = [x for x in sys.path if x.startswith(p) and x.endswith(("-packages", "-packages/"))]; \
  print(d[0] if d else sysconfig.get_path("purelib", "posix_prefix", vars={"base": p[:-1]}))')
INSTALL_SRC := pyproject.toml README.md LICENSE bin target host_tools
# The scripts run with -I -S: no site, no .pth files (~10 ms of every `tcr`; site costs tcrd
# resident memory too, and bench/bench_memory.py measures tcrd so). $(1): tcr's own place, the site
# directory or tcr.zip in it (first on sys.path). The site directory itself comes after the
# standard library, as site would put it: Buildroot and Yocto put the dependencies there
# (PySquashfsImage, dnslib, PyYAML); anything elsewhere is found through site on first use
# (tcr.common.siteimport).
TCR_PATH = $(if $(filter %.zip,$(1)),sys.path.insert(0, "$(1)")\n)sys.path.append("$(PYSITEDIR)")\n
define TCR_SCRIPTS
	printf '#!$(TARGET_PYTHON) -IS\nimport sys\n$(TCR_PATH)from tcr.cli.main import main\nsys.exit(main())\n' \
	  >"$(DESTDIR)$(BINDIR)/tcr"; chmod 0755 "$(DESTDIR)$(BINDIR)/tcr"; \
	printf '#!$(TARGET_PYTHON) -IS\nimport sys\n$(TCR_PATH)from tcr.daemon.main import main\nsys.exit(main())\n' \
	  >"$(DESTDIR)$(BINDIR)/tcrd"; chmod 0755 "$(DESTDIR)$(BINDIR)/tcrd"
endef

install:
	@test -n "$(PYSITEDIR)" || { echo "cannot find the site directory of $(PYTHON)"; exit 1; }
ifeq ($(BYTECODE_ONLY),1)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) host_tools/tcr_host/boardzip.py target/tcr "$$tmp/tcr.zip" --prefix "$(PYSITEDIR)/tcr.zip" \
	  $(BOARD_ZIP_FLAGS); \
	install -d "$(DESTDIR)$(PYSITEDIR)" "$(DESTDIR)$(BINDIR)"; \
	rm -rf "$(DESTDIR)$(PYSITEDIR)/tcr" "$(DESTDIR)$(PYSITEDIR)/tcr_host" "$(DESTDIR)$(PYSITEDIR)"/tcr-*.dist-info; \
	install -m 0644 "$$tmp/tcr.zip" "$(DESTDIR)$(PYSITEDIR)/tcr.zip"; \
	rm -f "$(DESTDIR)$(BINDIR)/tcr-create-image"; \
	$(call TCR_SCRIPTS,$(PYSITEDIR)/tcr.zip); \
	install -m 0755 target/init/tcr-purge "$(DESTDIR)$(BINDIR)/tcr-purge"
else
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/src"; tar --exclude=__pycache__ --exclude='*.egg-info' -cf - $(INSTALL_SRC) | tar -xf - -C "$$tmp/src"; \
	PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q --no-deps --no-build-isolation --no-index --no-compile \
	  --disable-pip-version-check --no-warn-script-location --target "$$tmp/site" "$$tmp/src"; \
	$(PYTHON) -m compileall -q -s "$$tmp/site" -p "$(PYSITEDIR)" "$$tmp/site/tcr" "$$tmp/site/tcr_host" >/dev/null; \
	install -d "$(DESTDIR)$(PYSITEDIR)" "$(DESTDIR)$(BINDIR)"; \
	rm -rf "$(DESTDIR)$(PYSITEDIR)/tcr" "$(DESTDIR)$(PYSITEDIR)/tcr.zip" "$(DESTDIR)$(PYSITEDIR)/tcr_host" \
	  "$(DESTDIR)$(PYSITEDIR)"/tcr-*.dist-info; \
	cp -R "$$tmp/site/tcr" "$$tmp/site/tcr_host" "$$tmp/site"/tcr-*.dist-info "$(DESTDIR)$(PYSITEDIR)/"; \
	install -m 0755 "$$tmp/site/bin/tcr-create-image" "$(DESTDIR)$(BINDIR)/tcr-create-image"; \
	$(call TCR_SCRIPTS,$(PYSITEDIR)); \
	install -m 0755 target/init/tcr-purge "$(DESTDIR)$(BINDIR)/tcr-purge"
endif
	@case "$(INIT)" in both|systemd) \
	  install -d "$(DESTDIR)$(UNITDIR)"; \
	  sed 's|^ExecStart=/usr/bin/tcrd|ExecStart=$(BINDIR)/tcrd|' target/init/tcrd.service >"$(DESTDIR)$(UNITDIR)/tcrd.service"; \
	  chmod 0644 "$(DESTDIR)$(UNITDIR)/tcrd.service";; esac
	@case "$(INIT)" in both|sysv) \
	  install -d "$(DESTDIR)$(INITDIR)"; \
	  sed 's|TCRD_BIN:=/usr/bin/|TCRD_BIN:=$(BINDIR)/|' target/init/S95tcrd >"$(DESTDIR)$(INITDIR)/S95tcrd"; \
	  chmod 0755 "$(DESTDIR)$(INITDIR)/S95tcrd";; esac
	@echo "installed tcr into $(DESTDIR)$(PREFIX) (python package: $(DESTDIR)$(PYSITEDIR))"

uninstall:
	@test -n "$(PYSITEDIR)" || { echo "cannot find the site directory of $(PYTHON)"; exit 1; }
	rm -rf "$(DESTDIR)$(PYSITEDIR)/tcr" "$(DESTDIR)$(PYSITEDIR)/tcr.zip" "$(DESTDIR)$(PYSITEDIR)/tcr_host" \
	  "$(DESTDIR)$(PYSITEDIR)"/tcr-*.dist-info
	rm -f "$(DESTDIR)$(BINDIR)/tcr" "$(DESTDIR)$(BINDIR)/tcrd" "$(DESTDIR)$(BINDIR)/tcr-create-image" \
	  "$(DESTDIR)$(BINDIR)/tcr-purge" "$(DESTDIR)$(UNITDIR)/tcrd.service" "$(DESTDIR)$(INITDIR)/S95tcrd"
	@echo "tcr removed; state in /var/lib/tcr is kept (tcr-purge removes it)"

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis test/fixtures/cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
