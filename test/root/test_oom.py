"""The `oom` event and inspect's State.OOMKilled (docker's), with a real container.

A container limited to 8 MiB (`run -m 8m`) whose command allocates and touches 64 MiB is killed
by the kernel's OOM killer: tcrd reads the cgroup's oom_kill counter (v1 memory.oom_control or v2
memory.events) when it reaps the exit, before the cgroup is deleted. `events` shows `oom` just
before `die` (exit code 137), inspect says OOMKilled true; a run that stays within its limit, and
the next start of the same container, say false.
"""

import json
import subprocess
import time

import pytest

from test.fixtures.images import c_tool_sqfs

pytestmark = pytest.mark.root

# busybox dd allocates its block (bs) and fills it: 64 MiB resident in an 8 MiB cgroup
HOG = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]


def cli(d, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = d.cli(*args)
    if ok:
        assert r.returncode == 0, f"tcr {' '.join(args)}: rc={r.returncode}\n{r.stdout}{r.stderr}\n{d.log()}"
    return r


def state(d, name: str) -> dict:
    return json.loads(cli(d, "inspect", name).stdout)[0]["State"]


def actions(d, name: str, since: float) -> list:
    out = cli(d, "events", "--since", str(since), "--until", str(time.time() + 1), "--filter",
              f"container={name}", "--format", '{{.Action}} {{index .Actor.Attributes "exitCode"}}').stdout
    return [ln.strip() for ln in out.splitlines()]


@pytest.fixture
def d(tcrd, tmp_path):
    cli(tcrd, "image", "load", c_tool_sqfs(str(tmp_path)))
    yield tcrd
    ids = tcrd.cli("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        cli(tcrd, "rm", "-f", *ids)


def test_oom_killed_container(d):
    t0 = time.time() - 1
    r = cli(d, "run", "--name", "hog", "-m", "8m", "--network", "none", "busybox", *HOG, ok=False)
    assert r.returncode == 137, (r.returncode, r.stderr, d.log())
    st = state(d, "hog")
    assert st["OOMKilled"] is True and st["ExitCode"] == 137 and st["Status"] == "exited"
    assert actions(d, "hog", t0) == ["create", "start", "oom", "die 137"]
    # started again without the hog: OOMKilled goes back to false (docker), no second oom event
    cli(d, "rm", "hog")
    cli(d, "run", "--name", "fits", "-m", "8m", "--network", "none", "busybox", "dd", "if=/dev/zero",
        "of=/dev/null", "bs=1k", "count=1")
    assert state(d, "fits")["OOMKilled"] is False
    assert "oom" not in " ".join(actions(d, "fits", t0))


def test_oom_then_restart_policy_and_detached(d):
    """Detached with --restart on-failure:1: oom + die twice, then it stays exited; a fresh start
    resets OOMKilled."""
    t0 = time.time() - 1
    cli(d, "run", "-d", "--name", "hog2", "-m", "8m", "--network", "none", "--restart", "on-failure:1",
        "busybox", *HOG)
    deadline = time.time() + 30
    while time.time() < deadline and actions(d, "hog2", t0).count("die 137") < 2:
        time.sleep(0.2)
    acts = actions(d, "hog2", t0)
    assert acts[:4] == ["create", "start", "oom", "die 137"] and acts.count("oom") == 2, acts
    assert all(acts[i - 1] == "oom" for i, a in enumerate(acts) if a == "die 137"), acts
    st = state(d, "hog2")
    assert st["OOMKilled"] is True and st["ExitCode"] == 137


def test_a_memory_limited_foreground_run_still_streams_and_takes_stdin(d):
    """`run -m` in the foreground starts the detached way (so the cgroup outlives the exit): its
    output, its stdin (-i) and its exit code are still the client's."""
    r = cli(d, "run", "--rm", "-m", "8m", "--network", "none", "busybox", "sh", "-c",
            "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")
    r = d.cli("run", "--rm", "-i", "-m", "8m", "--network", "none", "busybox", "sh", "-c", "cat; exit 3",
              input="piped\n")
    assert (r.returncode, r.stdout) == (3, "piped\n"), r.stderr
