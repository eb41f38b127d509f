"""target/init: the systemd unit, the BusyBox/SysV script S95tcrd and tcr-purge, without root
(their runs against a real daemon and real kernel objects are in test/root/test_initscript.py)."""

import os
import shutil
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INIT = os.path.join(ROOT, "target", "init")
UNIT = os.path.join(INIT, "tcrd.service")
SCRIPT = os.path.join(INIT, "S95tcrd")
PURGE = os.path.join(INIT, "tcr-purge")

sys.path.insert(0, os.path.join(ROOT, "target"))


def unit_settings() -> Dict[Tuple[str, str], List[str]]:
    out: Dict[Tuple[str, str], List[str]] = {}
    section = ""
    with open(UNIT, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.setdefault((section, k), []).append(v)
    return out


def test_unit_settings():
    s = unit_settings()
    assert s[("Service", "Type")] == ["simple"]
    assert s[("Service", "ExecStart")] == ["/usr/bin/tcrd"]
    # tcrd stops its containers itself; systemd must not kill them
    assert s[("Service", "KillMode")] == ["process"]
    assert s[("Service", "RuntimeDirectory")] == ["tcr"]
    assert s[("Service", "RuntimeDirectoryPreserve")] == ["yes"]
    assert s[("Service", "StateDirectory")] == ["tcr"]
    assert int(s[("Service", "TimeoutStopSec")][0]) >= 60
    after = " ".join(s[("Unit", "After")]).split()
    assert "network-online.target" in after and "nftables.service" in after
    assert s[("Install", "WantedBy")] == ["multi-user.target"]


def test_unit_passes_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    exe = tmp_path / "tcrd"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    unit = tmp_path / "tcrd.service"
    with open(UNIT, encoding="utf-8") as f:
        unit.write_text(f.read().replace("ExecStart=/usr/bin/tcrd", f"ExecStart={exe}"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                       timeout=60)
    complaints = [x for x in (r.stdout + r.stderr).splitlines() if str(unit) in x or "tcrd.service" in x]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


@pytest.mark.parametrize("path", [SCRIPT, PURGE], ids=os.path.basename)
@pytest.mark.parametrize("shell", ["/bin/sh", "busybox"])
def test_scripts_parse_in_posix_and_busybox_shells(path, shell):
    argv = [shell, "-n", path] if shell != "busybox" else ["busybox", "sh", "-n", path]
    if not shutil.which(argv[0]):
        pytest.skip(f"{argv[0]} not installed")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # S95tcrd is mode 0644 in the tree (Buildroot's check-package); installs set 0755
    assert os.access(path, os.X_OK) == (path != SCRIPT)
    with open(path, encoding="utf-8") as f:
        assert f.readline() == "#!/bin/sh\n"


def run_script(tmp_path, *args, **env):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TCRD_DEFAULTS": "/dev/null",
            "PIDFILE": str(tmp_path / "tcrd.pid"), "TCRD_LOG": str(tmp_path / "tcrd.log")}
    base.update(env)
    return subprocess.run(["/bin/sh", SCRIPT, *args], capture_output=True, text=True, env=base, timeout=60)


def test_status_and_stop_when_not_running(tmp_path):
    r = run_script(tmp_path, "status")
    assert r.returncode == 3 and "tcrd is not running" in r.stdout
    r = run_script(tmp_path, "stop")
    assert r.returncode == 0 and "not running" in r.stdout


def test_stale_pidfile_is_not_running(tmp_path):
    # a live process that is not a tcrd (a recycled pid): the command line check refuses it
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "tcrd.pid").write_text(f"{other.pid}\n")
        r = run_script(tmp_path, "status")
        assert r.returncode == 3, r.stdout
        r = run_script(tmp_path, "stop")
        assert r.returncode == 0 and not (tmp_path / "tcrd.pid").exists()
        assert other.poll() is None, "stop must not signal a process that is not tcrd"
    finally:
        other.kill()
        other.wait()


def test_start_reports_a_daemon_that_exits(tmp_path):
    fail = tmp_path / "tcrd"
    fail.write_text("#!/bin/sh\necho 'tcrd: prerequisite missing: crun' >&2\nexit 1\n")
    fail.chmod(0o755)
    r = run_script(tmp_path, "start", TCRD_BIN=str(fail), TCRD_ARGS="")
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "prerequisite missing: crun" in r.stderr


def test_usage(tmp_path):
    r = run_script(tmp_path, "frobnicate")
    assert r.returncode == 1 and "Usage:" in r.stdout


def test_defaults_file_and_environment(tmp_path):
    defaults = tmp_path / "default"
    defaults.write_text(f'PIDFILE="{tmp_path}/other.pid"\n')
    (tmp_path / "other.pid").write_text("999999999\n")
    r = run_script(tmp_path, "stop", TCRD_DEFAULTS=str(defaults))
    # the defaults file named the pid file: its stale entry is cleaned up
    assert r.returncode == 0 and not (tmp_path / "other.pid").exists()


# ---- tcr-purge ----------------------------------------------------------------------------------

def run_purge(*args):
    return subprocess.run(["/bin/sh", PURGE, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


def test_purge_names_the_instance_objects_like_the_daemon(tmp_path):
    from tcr.network import netplan

    root = str(tmp_path / "state")
    r = run_purge("--dry-run", "--root", root, "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    tag = netplan.instance_tag(root)
    p = netplan.if_prefix(tag)
    assert netplan.bridge_name(netplan.DEFAULT_NETWORK, tag) == p + "0"
    assert netplan.veth_name("0123456789abcdef", tag).startswith(p + "v")
    assert netplan.bridge_name("other", tag).startswith(p + "-")
    assert f"nft table {netplan.nft_table(tag)}, links {p}0 {p}-* {p}v*" in r.stdout
    r = run_purge("--dry-run")
    assert "nft table tcr, links tcr0 tcr-* tcrv*" in r.stdout


def test_purge_dry_run_changes_nothing(tmp_path):
    root = tmp_path / "state"
    (root / "images").mkdir(parents=True)
    (root / "images" / "x").write_text("keep")
    run = tmp_path / "run"
    (run / "netns").mkdir(parents=True)
    (run / "netns" / "c1").write_text("")
    r = run_purge("-n", "--root", str(root), "--run-dir", str(run))
    assert r.returncode == 0, r.stderr
    assert f"+ rm -f {run}/netns/c1" in r.stdout and f"+ rm -rf {root}" in r.stdout
    assert (root / "images" / "x").read_text() == "keep" and (run / "netns" / "c1").exists()


@pytest.mark.parametrize("bad", ["/", "relative/dir", "/var/lib", "/usr//", "/etc"])
def test_purge_refuses_dangerous_roots(bad):
    r = run_purge("--dry-run", "--root", bad)
    assert r.returncode == 1 and ("refusing" in r.stderr or "absolute" in r.stderr)
    r = run_purge("--dry-run", "--run-dir", bad)
    assert r.returncode == 1


def test_purge_rejects_unknown_arguments():
    r = run_purge("--frobnicate")
    assert r.returncode == 2 and "unknown argument" in r.stderr and "Usage:" in r.stdout
