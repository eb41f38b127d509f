"""Health checks on a real tcrd + crun: --health-* flags, the image's HEALTHCHECK, ps and inspect."""

import json
import os

import pytest

from test.fixtures.process import wait_for
from test.root.test_containers_image import build

pytestmark = pytest.mark.root

IMAGE_HC = json.dumps({"Test": ["CMD-SHELL", "test -f /tmp/ready"], "Interval": 300_000_000,
                       "Retries": 1})


@pytest.fixture
def d(tcrd, tmp_path):
    for name, tag, ann in (("plain.sqfs", "latest", None),
                           ("hc.sqfs", "hc", {"org.tcr.image.healthcheck": IMAGE_HC})):
        r = tcrd.cli("image", "load", build(str(tmp_path), name=name, tag=tag, annotations=ann))
        assert r.returncode == 0, r.stderr
    yield tcrd
    ids = tcrd.cli("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        tcrd.cli("rm", "-f", *ids)
    assert not os.listdir(os.path.join(tcrd.run_dir, "crun")) or not [
        x for x in os.listdir(os.path.join(tcrd.run_dir, "crun")) if len(x) == 64]


def _inspect(d, name):
    r = d.cli("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def _health(d, name):
    return (_inspect(d, name)["State"].get("Health") or {}).get("Status")


def _ps_status(d, name):
    return d.cli("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()


def test_health_cmd_goes_unhealthy_then_healthy(d):
    r = d.cli("run", "-d", "--name", "hc1", "--health-cmd", "test -f /tmp/ready",
              "--health-interval", "300ms", "--health-retries", "2", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    assert _health(d, "hc1") in ("starting", "unhealthy")
    wait_for(lambda: _health(d, "hc1") == "unhealthy", what=lambda: _inspect(d, "hc1")["State"])
    h = _inspect(d, "hc1")["State"]["Health"]
    assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
    assert _ps_status(d, "hc1").endswith("(unhealthy)")
    assert d.cli("exec", "hc1", "touch", "/tmp/ready").returncode == 0
    wait_for(lambda: _health(d, "hc1") == "healthy", what=lambda: _inspect(d, "hc1")["State"])
    assert _ps_status(d, "hc1").endswith("(healthy)")
    ev = d.cli("events", "--since", "0", "--until", "0s", "--filter", "container=hc1", "--format",
               "{{.Action}}")
    assert ev.returncode == 0, ev.stderr
    got = [a for a in ev.stdout.splitlines() if a.startswith("health_status")]
    assert got == ["health_status: unhealthy", "health_status: healthy"]
    cfg = _inspect(d, "hc1")["Config"]["Healthcheck"]
    assert cfg["Test"] == ["CMD-SHELL", "test -f /tmp/ready"] and cfg["Interval"] == 300_000_000
    # a stopped container has no monitor (and no timer) any more
    assert d.cli("stop", "-t", "1", "hc1").returncode == 0
    assert "Health" not in _inspect(d, "hc1")["State"]


def test_start_period_failures_do_not_count(d):
    r = d.cli("run", "-d", "--name", "hc2", "--health-cmd", "false", "--health-interval", "200ms",
              "--health-retries", "1", "--health-start-period", "60s", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len((_inspect(d, "hc2")["State"].get("Health") or {}).get("Log", [])) >= 2)
    assert _health(d, "hc2") == "starting"
    assert "(health: starting)" in _ps_status(d, "hc2")


def test_image_healthcheck_and_no_healthcheck(d):
    r = d.cli("run", "-d", "--name", "hc3", "busybox:hc", "sh", "-c", "touch /tmp/ready; sleep 60")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: _health(d, "hc3") == "healthy", what=lambda: _inspect(d, "hc3")["State"])
    r = d.cli("run", "-d", "--name", "hc4", "--no-healthcheck", "busybox:hc", "sleep", "60")
    assert r.returncode == 0, r.stderr
    assert "Health" not in _inspect(d, "hc4")["State"]
    # --health-interval alone keeps the image's test
    r = d.cli("run", "-d", "--name", "hc5", "--health-interval", "100ms", "busybox:hc", "sleep", "60")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: _health(d, "hc5") == "unhealthy", what=lambda: _inspect(d, "hc5")["State"])


def test_no_check_no_health(d):
    assert d.cli("run", "-d", "--name", "hc6", "busybox", "sleep", "60").returncode == 0
    st = _inspect(d, "hc6")["State"]
    assert "Health" not in st and _ps_status(d, "hc6").startswith("Up") and "(" not in _ps_status(d, "hc6")


def test_health_survives_tcrd_restart(d):
    assert d.cli("run", "-d", "--name", "hc7", "--health-cmd", "true", "--health-interval", "200ms",
                 "busybox", "sleep", "60").returncode == 0
    wait_for(lambda: _health(d, "hc7") == "healthy")
    d.kill9()  # the container lives on; the new tcrd re-adopts it and its check
    d.start()
    wait_for(lambda: _health(d, "hc7") == "healthy", what=lambda: _inspect(d, "hc7")["State"])


def test_bad_health_flags_are_refused(d):
    for flags in (["--health-interval", "soon"], ["--health-retries", "0"], ["--health-cmd", ""],
                  ["--no-healthcheck", "--health-cmd", "true"], ["--health-timeout=-1s"]):
        r = d.cli("run", "-d", *flags, "busybox", "sleep", "1")
        assert r.returncode == 125 and r.stderr.startswith("tcr: "), (flags, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 2
    assert d.cli("ps", "-aq").stdout.strip() == ""
