"""Containers end to end on a real tcrd + crun, with a busybox squashfs image.

Every test checks at the end that no crun container of this daemon is left and that nothing is
mounted under the container directories (the tcrd fixture also checks mounts and loop devices).
"""

import json
import os
import signal
import subprocess

import pytest

from test.fixtures.process import wait_for as _wait_for
from test.root.test_containers_image import build

pytestmark = pytest.mark.root


@pytest.fixture
def d(tcrd, tmp_path):
    img = build(str(tmp_path))
    r = tcrd.cli("image", "load", img)
    assert r.returncode == 0, r.stderr
    yield tcrd
    # Clean up what a failing test may have left, then check for leaks.
    ids = tcrd.cli("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        tcrd.cli("rm", "-f", *ids)
    crun_root = os.path.join(tcrd.run_dir, "crun")
    left = subprocess.run(["crun", "--root", crun_root, "list", "-q"], capture_output=True, text=True).stdout
    assert left.split() == [], f"crun containers left: {left}"
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f]
    cdir = os.path.join(tcrd.root, "containers")
    assert not [m for m in mounts if m.startswith(cdir)], "overlay mounts left"


def cli(d, *args, ok=True):
    r = d.cli(*args)
    if ok:
        assert r.returncode == 0, (f"tcr {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}\n"
                                   f"{d.log()}")
    return r


def inspect(d, ref):
    return json.loads(cli(d, "inspect", ref).stdout)[0]


def test_detached_round_trip(d):
    cid = cli(d, "run", "-d", "--name", "web", "--network", "none", "busybox",
              "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"
              ).stdout.strip()
    assert len(cid) == 16
    ps = cli(d, "ps").stdout
    assert "web" in ps and "Up " in ps and cid[:12] in ps
    _wait_for(lambda: "started" in cli(d, "logs", "web").stdout, what="log line")
    assert cli(d, "exec", "web", "cat", "/etc/hostname").stdout.strip() == cid[:12]
    assert cli(d, "exec", cid[:6], "sh", "-c", "echo $((6*7))").stdout.strip() == "42"
    # rm without -f refuses a running container
    r = cli(d, "rm", "web", ok=False)
    assert r.returncode != 0 and "running" in r.stderr
    cli(d, "stop", "-t", "5", "web")
    info = inspect(d, "web")
    assert info["state"] == "exited" and info["exitCode"] == 0 and info["stoppedByUser"]
    assert "bye" in cli(d, "logs", "web").stdout
    assert "Exited (0)" in cli(d, "ps", "-a").stdout
    assert cli(d, "wait", "web").stdout.strip() == "0"
    cli(d, "rm", "web")
    assert cli(d, "ps", "-a", "-q").stdout.strip() == ""
    assert not os.path.exists(os.path.join(d.root, "containers", cid))


def test_interactive_exit_codes(d):
    def rc(*cmd):
        return d.cli("run", "--rm", "--network", "none", "busybox", *cmd).returncode

    assert rc("true") == 0
    assert rc("sh", "-c", "exit 3") == 3
    assert rc("nonexistent-command") == 127
    assert rc("/etc") == 126
    # PID 1 ignores signals from inside its own namespace, so a child is killed: 128+9
    assert rc("sh", "-c", "sh -c 'kill -9 $$'; exit $?") == 137
    r = d.cli("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")
    _wait_for(lambda: cli(d, "ps", "-aq").stdout.strip() == "", what="--rm cleanup")


def test_kill_gives_137_and_wait(d):
    cli(d, "run", "-d", "--name", "k", "--network", "none", "busybox", "sleep", "100")
    cli(d, "kill", "k")
    _wait_for(lambda: inspect(d, "k")["state"] == "exited", what="exit")
    assert cli(d, "wait", "k").stdout.strip() == "137"
    cli(d, "rm", "k")


def test_rm_detached_and_force(d):
    cid = cli(d, "run", "-d", "--rm", "--network", "none", "busybox", "true").stdout.strip()
    _wait_for(lambda: cid[:12] not in cli(d, "ps", "-a").stdout, what="--rm -d removal")
    cli(d, "run", "-d", "--name", "f", "--network", "none", "busybox", "sleep", "100")
    cli(d, "rm", "-f", "f")
    assert cli(d, "ps", "-aq").stdout.strip() == ""


def test_read_only_and_overlay_writes(d):
    r = d.cli("run", "--rm", "--read-only", "--network", "none", "busybox", "touch", "/x")
    assert r.returncode != 0 and "Read-only" in r.stderr
    # Without --read-only writes land in the container's upper dir, not in the image.
    cli(d, "run", "--name", "w", "--network", "none", "busybox", "sh", "-c", "echo data > /written")
    cid = inspect(d, "w")["id"]
    with open(os.path.join(d.root, "containers", cid, "upper", "written")) as f:
        assert f.read() == "data\n"
    cli(d, "rm", "w")


def _cgroup_file(controller, cid, name):
    for base in (f"/sys/fs/cgroup/{controller}/tcr/{cid}", f"/sys/fs/cgroup/tcr/{cid}"):
        p = os.path.join(base, name)
        if os.path.exists(p):
            return p
    return None


def test_limits_in_cgroup(d):
    cid = cli(d, "run", "-d", "--network", "none", "--memory", "64m", "--pids-limit", "33", "busybox",
              "sleep", "100").stdout.strip()
    mem = _cgroup_file("memory", cid, "memory.limit_in_bytes") or _cgroup_file("memory", cid, "memory.max")
    pids = _cgroup_file("pids", cid, "pids.max")
    assert mem and pids, "container cgroup not found"
    with open(mem) as f:
        assert int(f.read()) == 64 << 20
    with open(pids) as f:
        assert f.read().strip() == "33"
    cli(d, "rm", "-f", cid)


def _pid(d, ref):
    return _wait_for(lambda: (inspect(d, ref)["state"] == "running" and inspect(d, ref)["pid"]) or None,
                     what=f"{ref} running")


def test_always_restarts_after_crash_and_daemon_kill9(d):
    cli(d, "run", "-d", "--name", "a", "--restart", "always", "--network", "none", "busybox", "sleep", "1000")
    pid1 = _pid(d, "a")
    os.kill(pid1, signal.SIGKILL)  # the process dies behind tcr's back: the policy restarts it
    _wait_for(lambda: inspect(d, "a")["restartCount"] == 1 and inspect(d, "a")["state"] == "running",
              what="restart after crash")
    pid2 = _pid(d, "a")
    assert pid2 != pid1
    d.kill9()  # tcrd dies; the container keeps running and is re-adopted
    assert os.path.exists(f"/proc/{pid2}")
    d.start()
    info = inspect(d, "a")
    assert info["state"] == "running" and info["pid"] == pid2
    os.kill(pid2, signal.SIGKILL)  # re-adopted (not our child): exit code unknown, still restarted
    _wait_for(lambda: inspect(d, "a")["restartCount"] == 2 and inspect(d, "a")["state"] == "running",
              what="restart after re-adoption")
    # A graceful daemon restart stops it but brings it back; `stop` is never undone.
    d.restart()
    _pid(d, "a")
    cli(d, "stop", "-t", "1", "a")
    d.restart()
    assert inspect(d, "a")["state"] == "exited"
    cli(d, "rm", "a")


def test_restart_backoff_grows(d):
    cli(d, "run", "-d", "--name", "crashy", "--restart", "on-failure:3", "--network", "none", "busybox",
        "sh", "-c", "exit 1")
    _wait_for(lambda: inspect(d, "crashy")["state"] == "exited" and inspect(d, "crashy")["restartCount"] == 3,
              what="3 restarts then give up")
    info = inspect(d, "crashy")
    assert info["exitCode"] == 1
    log = d.log()
    delays = [float(x.split("restarting in ")[1].rstrip("s"))
              for x in log.splitlines() if "restarting in" in x]
    assert delays[:3] == [0.1, 0.2, 0.4]
    cli(d, "rm", "crashy")


def test_logs_never_exceed_cap(d):
    cid = cli(d, "run", "-d", "--network", "none", "--log-size", "8k", "--log-files", "2", "busybox",
              "sh", "-c", "seq 1 30000; echo done").stdout.strip()
    _wait_for(lambda: inspect(d, cid)["state"] == "exited", what="chatty container exit")
    cdir = os.path.join(d.root, "containers", cid)
    files = [f for f in os.listdir(cdir) if f.startswith("container.log")]
    assert sorted(files) == ["container.log", "container.log.1"]
    sizes = [os.path.getsize(os.path.join(cdir, f)) for f in files]
    assert all(s <= 8192 for s in sizes) and sum(sizes) <= 16384
    out = cli(d, "logs", "-n", "2", cid).stdout
    assert out == "30000\ndone\n"
    assert cli(d, "logs", "-t", "-n", "1", cid).stdout.endswith("Z done\n")
    cli(d, "rm", cid)


def test_errors_change_nothing(d):
    r = d.cli("run", "--network", "nosuchnet", "busybox", "true")
    assert r.returncode == 125 and "nosuchnet" in r.stderr
    r = d.cli("run", "nosuchimage", "true")
    assert r.returncode == 125
    assert cli(d, "ps", "-aq").stdout.strip() == ""
    r = d.cli("stop", "nosuch")
    assert r.returncode != 0 and "no such container" in r.stderr
    cli(d, "create", "--name", "dup", "--network", "none", "busybox", "true")
    r = d.cli("run", "--name", "dup", "--network", "none", "busybox", "true")
    assert r.returncode == 125 and "already in use" in r.stderr
    cli(d, "start", "dup")
    _wait_for(lambda: inspect(d, "dup")["state"] == "exited", what="exit")
    assert inspect(d, "dup")["exitCode"] == 0
    cli(d, "rm", "dup")


def test_logs_follow_streams_until_exit(d):
    cli(d, "run", "-d", "--name", "fl", "--network", "none", "busybox",
        "sh", "-c", "echo one; sleep 0.5; echo two; sleep 0.5; echo three")
    r = cli(d, "logs", "-f", "fl")  # returns when the container exits
    assert r.stdout == "one\ntwo\nthree\n"
    cli(d, "rm", "fl")


def test_exec_detached_writes_to_log(d):
    cli(d, "run", "-d", "--name", "ex", "--network", "none", "busybox", "sleep", "100")
    cli(d, "exec", "-d", "ex", "sh", "-c", "echo from-exec")
    _wait_for(lambda: "from-exec" in cli(d, "logs", "ex").stdout, what="exec -d output")
    r = d.cli("exec", "ex", "no-such-cmd")
    assert r.returncode != 0
    cli(d, "rm", "-f", "ex")
    r = d.cli("exec", "ex", "true")
    assert r.returncode == 125 and "no such container" in r.stderr


def test_daemon_sigterm_stops_containers_gracefully(d):
    cli(d, "run", "-d", "--name", "g", "--network", "none", "busybox",
        "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    pid = _pid(d, "g")
    d.restart()  # SIGTERM: stops it (exit 0 via its trap), policy "no": stays exited
    assert not os.path.exists(f"/proc/{pid}")  # stopped and reaped by tcrd before it exited
    info = inspect(d, "g")
    assert info["state"] == "exited" and info["exitCode"] == 0 and not info["stoppedByUser"]
    cli(d, "rm", "g")
