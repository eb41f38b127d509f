"""docker's everyday commands on a real tcrd + crun: formats, filters, inspect of any object,
pause/unpause, rename, update, top, stats, events, system info/df/prune and the prunes, image tag,
and the smaller fixes (acting on the good names, ports of stopped containers, moved tags).
"""

import json
import os
import subprocess
import sys
import time

import pytest

from test.fixtures.process import wait_for
from test.root.test_containers import cli, d, inspect  # noqa: F401  (d: the image-loaded daemon)
from test.root.test_containers_image import build

pytestmark = pytest.mark.root

SLEEPER = ["busybox", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]


def run_d(d, name, *extra):
    return cli(d, "run", "-d", "--name", name, "--network", "none", *extra, *SLEEPER).stdout.strip()


def test_ps_format_filter_and_inspect_templates(d):
    a = run_d(d, "evA", "--label", "app=shop") if _has_label(d) else run_d(d, "evA")
    run_d(d, "evB")
    cli(d, "run", "-d", "--name", "evC", "--network", "none", "busybox", "sh", "-c", "exit 3")
    wait_for(lambda: inspect(d, "evC")["state"] == "exited", what="evC exits")
    out = cli(d, "ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(out) == ["evA", "evB"]
    out = cli(d, "ps", "-a", "--format", "{{.Names}}:{{.State}}").stdout.split()
    assert "evC:exited" in out and "evA:running" in out
    assert cli(d, "ps", "--filter", "exited=3", "--format", "{{.Names}}").stdout.split() == ["evC"]
    assert cli(d, "ps", "-a", "--filter", "status=running", "--filter", "name=evA", "-q").stdout.split() == [
        a[:12]
    ]
    assert cli(d, "ps", "--filter", "id=" + a[:6], "--format", "{{.ID}}").stdout.split() == [a[:12]]
    assert cli(d, "ps", "-a", "--filter", "ancestor=busybox", "-q").stdout.count("\n") == 3
    table = cli(d, "ps", "--format", "table {{.ID}}\t{{.Names}}").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAMES"] and len(table) == 3
    lines = cli(d, "ps", "--format", "{{json .}}").stdout.splitlines()
    assert {json.loads(line)["Names"] for line in lines} == {"evA", "evB"}
    # inspect -f on a container, an image and a network; docker's field names.
    assert cli(d, "inspect", "-f", "{{.State.Status}} {{.Name}}", "evA").stdout == "running /evA\n"
    assert cli(d, "inspect", "-f", "{{.State.ExitCode}}", "evC").stdout == "3\n"
    assert cli(d, "inspect", "--format", "{{.id}}", "busybox").stdout.strip() == inspect(d, "evA")["imageId"]
    cli(d, "network", "create", "evnet")
    try:
        assert cli(d, "inspect", "-f", "{{.name}}", "evnet").stdout == "evnet\n"
        assert cli(d, "network", "ls", "--format", "{{.Name}}").stdout.split().count("evnet") == 1
    finally:
        cli(d, "network", "rm", "evnet")
    assert (
        cli(d, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.strip()
        == "docker.io/library/busybox:latest"
    )
    r = cli(d, "inspect", "nosuchobject", ok=False)
    assert r.returncode == 1 and "no such object" in r.stderr


def _has_label(d) -> bool:
    return "--label" in cli(d, "run", "--help").stdout


def test_rm_stop_kill_act_on_the_good_names(d):
    run_d(d, "good1")
    run_d(d, "good2")
    r = cli(d, "stop", "-t", "1", "good1", "nosuch", "good2", ok=False)
    assert r.returncode == 1 and r.stdout.split() == ["good1", "good2"] and "nosuch" in r.stderr
    assert inspect(d, "good1")["state"] == "exited" and inspect(d, "good2")["state"] == "exited"
    r = cli(d, "rm", "good1", "nosuch", "good2", ok=False)
    assert r.returncode == 1 and r.stdout.split() == ["good1", "good2"]
    assert cli(d, "ps", "-aq").stdout.strip() == ""
    run_d(d, "good3")
    r = cli(d, "kill", "nosuch", "good3", ok=False)
    assert r.returncode == 1 and r.stdout.split() == ["good3"]
    r = cli(d, "rm", "nosuch", ok=False)
    assert r.returncode == 1 and "no such container" in r.stderr


def test_container_and_image_verbs_reach_handlers_loaded_on_first_use(d):
    """`container ls/inspect/logs/stop/rm` and `image ls/inspect`: the `container` and `image`
    groups dispatch to handlers that load on first use (tcr.commands.showing, lifecycle, imageops)."""
    cid = cli(d, "container", "run", "-d", "--name", "cv1", "--network", "none", "busybox",
              "sh", "-c", "echo hello-cv1; trap 'exit 0' TERM; while true; do sleep 0.1; done").stdout.strip()
    assert cli(d, "container", "ls", "--format", "{{.Names}}").stdout.split() == ["cv1"]
    assert cli(d, "container", "inspect", "-f", "{{.Name}}", "cv1").stdout == "/cv1\n"
    wait_for(lambda: "hello-cv1" in cli(d, "container", "logs", "cv1").stdout, what="cv1's output")
    assert cli(d, "container", "stop", "-t", "1", "cv1").stdout == "cv1\n"
    assert cli(d, "container", "rm", "cv1").stdout == "cv1\n"
    assert cli(d, "container", "ls", "-aq").stdout == ""
    assert cid[:12] not in cli(d, "ps", "-a").stdout
    iid = cli(d, "image", "ls", "-q").stdout.split()
    assert len(iid) == 1
    assert cli(d, "image", "inspect", "-f", "{{.id}}", "busybox").stdout.strip() == iid[0]
    r = cli(d, "container", "frob", ok=False)
    assert r.returncode == 125 and "unknown subcommand" in r.stderr


def test_ps_hides_ports_of_stopped_and_shows_moved_tags_by_id(d, tmp_path):
    cli(d, "run", "-d", "--name", "pweb", "-p", "127.0.0.1:18931:80", *SLEEPER)
    assert "18931" in cli(d, "ps", "--format", "{{.Ports}}").stdout
    cli(d, "stop", "-t", "1", "pweb")
    assert "18931" not in cli(d, "ps", "-a", "--filter", "name=pweb", "--format", "{{.Ports}}").stdout
    assert "18931" not in cli(d, "ps", "-a").stdout
    old = inspect(d, "pweb")["imageId"]
    # A newer image takes busybox:latest: the old container now shows its image's id.
    img2 = build(str(tmp_path), name="bb2.sqfs", variant="-newer")
    new = cli(d, "image", "load", "-q", img2).stdout.strip().splitlines()[0]
    assert new != old
    assert cli(d, "ps", "-a", "--filter", "name=pweb", "--format", "{{.Image}}").stdout.strip() == old[:12]
    cli(d, "rm", "pweb")
    cli(d, "image", "rm", new)


def _freezer_state(pid: int) -> str:
    from tcr.kernel.cgroupfs import Cgroups

    cg = Cgroups.of_pid(pid)
    if "freezer" in cg.v1:
        with open(os.path.join(cg.v1["freezer"], "freezer.state")) as f:
            return f.read().strip()
    with open(os.path.join(cg.v2 or "", "cgroup.freeze")) as f:
        return "FROZEN" if f.read().strip() == "1" else "THAWED"


def test_pause_unpause_rename_update_top_stats(d):
    run_d(d, "pz", "--memory", "64m")
    pid = inspect(d, "pz")["pid"]
    cli(d, "pause", "pz")
    assert _freezer_state(pid) == "FROZEN"
    assert "(Paused)" in cli(d, "ps").stdout
    assert cli(d, "ps", "--filter", "status=paused", "--format", "{{.Names}}").stdout.split() == ["pz"]
    assert cli(d, "inspect", "-f", "{{.State.Paused}} {{.State.Status}}", "pz").stdout == "true paused\n"
    assert cli(d, "pause", "pz", ok=False).returncode == 1
    cli(d, "unpause", "pz")
    assert _freezer_state(pid) == "THAWED"
    # rename: the name, ps and the network lease follow
    cli(d, "rename", "pz", "pz2")
    assert cli(d, "ps", "--format", "{{.Names}}").stdout.split() == ["pz2"]
    assert cli(d, "rename", "nosuch", "x", ok=False).returncode == 1
    # update: live limits and the restart policy
    cli(d, "update", "--memory", "32m", "--restart", "always", "pz2")
    from tcr.kernel.cgroupfs import Cgroups

    assert Cgroups.of_pid(pid).memory()["limit"] == 32 << 20
    assert (
        cli(d, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}}", "pz2").stdout
        == f"always {32 << 20}\n"
    )
    # top: the container's processes as the host sees them
    top = cli(d, "top", "pz2").stdout
    assert top.splitlines()[0].split()[:3] == ["UID", "PID", "PPID"] and str(pid) in top
    top = cli(d, "top", "pz2", "-o", "pid,comm").stdout
    assert "PID" in top.splitlines()[0] and str(pid) in top and len(top.splitlines()) >= 2
    # stats: one sample with the real memory limit
    item = json.loads(cli(d, "stats", "--no-stream", "--format", "json", "pz2").stdout)[0]
    assert item["Name"] == "pz2" and item["memoryLimit"] == 32 << 20 and item["PIDs"] >= 1
    table = cli(d, "stats", "--no-stream").stdout
    assert "MEM USAGE / LIMIT" in table and "32MiB" in table
    # A paused container still stops (it is thawed first).
    cli(d, "pause", "pz2")
    cli(d, "stop", "-t", "5", "pz2")
    assert inspect(d, "pz2")["state"] == "exited"


def _tcr_popen(d, *args):
    from test.fixtures.daemon import _env

    return subprocess.Popen(
        [sys.executable, "-m", "tcr.cli.main", "--socket", d.socket, *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_events_ring_and_stream(d):
    watcher = _tcr_popen(
        d, "events", "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}"
    )
    try:
        time.sleep(0.3)  # the watcher subscribes (test pacing only, nothing is timed)
        cli(d, "run", "-d", "--rm", "--name", "evr", "--network", "none", "busybox", "sh", "-c", "exit 4")
        wait_for(lambda: "destroy" in "".join(_events(d, "--filter", "container=evr")), what="destroy event")
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    past = _events(d, "--filter", "container=evr")
    actions = [line.split()[0] for line in past]
    assert actions[:1] == ["create"] and "start" in actions and "destroy" in actions
    die = [line for line in past if line.startswith("die")]
    assert die and "exitCode=4" in die[0]
    assert "create evr" in out and "die evr" in out
    r = cli(d, "events", "--since", "bogus", "--until", "0", ok=False)
    assert r.returncode == 125


def _events(d, *filters):
    now = str(time.time() + 1)
    fmt = '{{.Action}} exitCode={{index .Actor.Attributes "exitCode"}}'
    return cli(d, "events", "--since", "10m", "--until", now, "--format", fmt, *filters).stdout.splitlines()


def test_system_info_df_and_prunes(d, tmp_path):
    info = json.loads(cli(d, "system", "info", "--format", "json").stdout)
    assert (
        info["Images"] == 1
        and info["DockerRootDir"] == d.root
        and info["KernelVersion"] == os.uname().release
    )
    assert "Cgroup Version" in cli(d, "info").stdout
    run_d(d, "keep")
    cli(
        d,
        "run",
        "--name",
        "gone1",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1k count=512 2>/dev/null",
    )
    df = json.loads(cli(d, "system", "df", "--format", "json").stdout)
    ctrs = {c["Name"]: c for c in df["containers"]}
    assert ctrs["gone1"]["Size"] >= 512 * 1024 and not ctrs["gone1"]["InUse"] and ctrs["keep"]["InUse"]
    summary = {s["Type"]: s for s in df["summary"]}
    assert summary["Containers"]["Reclaimable"] >= 512 * 1024 and summary["Images"]["Active"] == 1
    assert "RECLAIMABLE" in cli(d, "system", "df").stdout
    out = cli(d, "container", "prune", "-f").stdout
    assert "gone1" not in cli(d, "ps", "-a").stdout and "keep" in cli(d, "ps").stdout
    assert "Total reclaimed space" in out and "0B" not in out.splitlines()[-1]
    cli(d, "network", "create", "prunenet")
    assert "prunenet" in cli(d, "network", "prune", "-f").stdout
    assert "prunenet" not in cli(d, "network", "ls").stdout
    # image tag, then image prune -a keeps the used image
    cli(d, "image", "tag", "busybox", "myapp:v1")
    assert (
        cli(d, "inspect", "-f", "{{.id}}", "myapp:v1").stdout
        == cli(d, "inspect", "-f", "{{.id}}", "busybox").stdout
    )
    assert cli(d, "image", "tag", "busybox", "Bad Name", ok=False).returncode == 1
    cli(d, "image", "prune", "-a", "-f")
    assert cli(d, "images", "-q").stdout.strip() != ""
    cli(d, "rm", "-f", "keep")
    out = cli(d, "system", "prune", "-a", "-f").stdout
    assert "Deleted Images" in out and cli(d, "images", "-q").stdout.strip() == ""


def test_image_load_from_stdin_and_with_input_flag(tcrd, tmp_path):
    from test.fixtures.daemon import _env

    img = build(str(tmp_path), name="stdin.sqfs", variant="-stdin")
    with open(img, "rb") as f:
        r = subprocess.run(
            [sys.executable, "-m", "tcr.cli.main", "--socket", tcrd.socket, "image", "load", "-q"],
            stdin=f,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    assert cli(tcrd, "images", "-q").stdout.split() == [iid]
    incoming = os.path.join(tcrd.root, "incoming")
    assert not os.path.isdir(incoming) or os.listdir(incoming) == []  # the upload went into the store
    cli(tcrd, "image", "rm", iid)
    r = cli(tcrd, "image", "load", "-i", img)
    assert r.stdout.splitlines()[0] == iid
    cli(tcrd, "image", "rm", iid)
    # Empty stdin: one line, nothing loaded, nothing left behind.
    r = subprocess.run(
        [sys.executable, "-m", "tcr.cli.main", "--socket", tcrd.socket, "image", "load"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert r.returncode == 125 and "empty" in r.stderr
    assert cli(tcrd, "images", "-q").stdout.strip() == ""
    assert not os.path.isdir(incoming) or os.listdir(incoming) == []
