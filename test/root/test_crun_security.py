"""A crun built without libcap/libseccomp (what Buildroot made before tcr selected both) ignores
--cap-drop and seccomp: `tcrd --check` fails on it, tcrd refuses to start on it, and starts only
with the documented override, warning loudly. The crun here is the real one behind a wrapper
that answers --version the way such a build does."""

import os
import subprocess
import sys

import pytest

from test.fixtures.daemon import Tcrd, _env

pytestmark = pytest.mark.root

BARE_VERSION = "crun version 1.24\\ncommit: 54693209\\nrundir: /run/crun\\nspec: 1.0.0\\n+YAJL\\n"


@pytest.fixture
def bare_crun_path(tmp_path):
    real = subprocess.run(["sh", "-c", "command -v crun"], capture_output=True, text=True).stdout.strip()
    assert real, "crun is not installed"
    d = tmp_path / "bin"
    d.mkdir()
    crun = d / "crun"
    crun.write_text('#!/bin/sh\nif [ "$1" = --version ]; then printf "' + BARE_VERSION + '"; exit 0; fi\n'
                    f'exec {real} "$@"\n')
    crun.chmod(0o755)
    return f"{d}:{os.environ['PATH']}"


def test_check_fails_on_a_crun_without_caps_and_seccomp(bare_crun_path):
    env = dict(_env(), PATH=bare_crun_path)
    r = subprocess.run([sys.executable, "-m", "tcr.daemon.main", "--check"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    line = next(x for x in r.stdout.splitlines() if "] crun" in x)
    assert "FAIL" in line and "+CAP +SECCOMP" in line
    assert "BR2_PACKAGE_LIBSECCOMP" in r.stdout


def test_tcrd_refuses_to_start_on_it(bare_crun_path, tmp_path):
    d = Tcrd(str(tmp_path / "t"))
    env = dict(_env(), PATH=bare_crun_path)
    env.pop("TCR_ALLOW_INSECURE_CRUN", None)
    r = subprocess.run(d.argv(), env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "refusing to start" in r.stderr and "+CAP +SECCOMP" in r.stderr
    assert "--allow-insecure-crun" in r.stderr and "TCR_ALLOW_INSECURE_CRUN=1" in r.stderr
    assert not os.path.exists(d.socket) and not os.path.exists(d.pidfile)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_override_starts_tcrd_with_a_loud_warning(bare_crun_path, tmp_path, monkeypatch, how):
    monkeypatch.setenv("PATH", bare_crun_path)
    if how == "env":
        monkeypatch.setenv("TCR_ALLOW_INSECURE_CRUN", "1")
    (tmp_path / "t").mkdir()
    d = Tcrd(str(tmp_path / "t"), extra_args=["--allow-insecure-crun"] if how == "flag" else [])
    d.start()
    try:
        assert "INSECURE: crun 1.24" in d.log() and "every capability" in d.log()
        assert d.cli("ps").returncode == 0
        # `tcr check` through the running daemon names the problem too
        r = d.cli("check")
        line = next(x for x in r.stdout.splitlines() if "] crun" in x)
        assert r.returncode != 0 and "FAIL" in line and "+CAP +SECCOMP" in line
        assert d.remove_all_containers_and_networks() == []
        assert d.stop() == 0
        assert d.net_leftovers() == []
    finally:
        d.kill9()
        d.force_clean_net()
        d.force_clean()
