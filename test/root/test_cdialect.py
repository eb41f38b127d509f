"""The C client's dialect on tcrd's compat socket, against the C tool's recorded answers.

test/samples/c-client/transcripts.md is the C daemon's own session, recorded with the real C
client. Every row is replayed here, in order, against a real tcrd: the request is sent exactly as
the C client sends it (test/fixtures/cclient.py: method argv[1], params.args/pwd/pid) to the compat
socket, and the exit code, stdout and stderr are compared byte for byte after one normalization:
ids (16 hex) and addresses (the transcript's subnets differ per machine) are compared by shape,
padding included. Where the C tool is broken (the transcript's notes), tcrd does the right thing:
those rows carry the corrected answer in DEVIATIONS, and extra checks prove the container really
stopped, that "--network none" made no network, and so on.

The daemon listens on a private compat name (tcrd --compat-socket @NAME): only one process can own
@tiny_container_runtime, and the shared fixture turns it off. test_default_compat_name_speaks_c
checks the real name in a private network namespace (abstract names are per netns).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, replace
from typing import Dict, List, Optional

import pytest

from test.fixtures.daemon import REPO, Tcrd, _env, managed_tcrd
from test.fixtures.images import c_tool_sqfs, variant_digest
from test.fixtures.process import wait_for

pytestmark = pytest.mark.root

TRANSCRIPT = os.path.join(REPO, "test", "samples", "c-client", "transcripts.md")
CCLIENT = os.path.join(REPO, "test", "fixtures", "cclient.py")
PS_HEADER = "ID               NAME                 IMAGE                    STATUS\n"
PY_BUILT_NAME = "127.0.0.1:5077/cpeer/bb:1"  # the name the transcript's tcr-create-image image had


@dataclass(frozen=True)
class Row:
    name: str
    argv: List[str]
    stdout: str = ""
    stderr: str = ""
    exit: int = 0


def parse_transcript(text: str) -> List[Row]:
    rows: List[Row] = []
    name: Optional[str] = None
    block: Optional[List[str]] = None
    for line in text.splitlines():
        if line.startswith("### "):
            name = line[4:].strip()
        elif line.startswith("```") and name is not None:
            if block is None:
                block = []
                continue
            cmd, body = block[0], block[1:]
            assert cmd.startswith("$ tcr ") and body and body[-1].startswith("[exit "), (name, block)
            out = "".join(b + "\n" for b in body[:-1] if not b.startswith("[stderr] "))
            err = "".join(b[len("[stderr] "):] + "\n" for b in body[:-1] if b.startswith("[stderr] "))
            rows.append(Row(name, shlex.split(cmd[len("$ tcr "):]), out, err, int(body[-1][6:-1])))
            name, block = None, None
        elif block is not None:
            block.append(line)
    return rows


# Rows where the C tool is broken (see the transcript's notes): tcrd's right answer, same format.
DEVIATIONS: Dict[str, dict] = {
    # crun had not written its state yet when the C daemon answered `run -d`; tcrd answers after.
    "exec-immediately-after-run-d": dict(exit=0, stdout="from-exec\n", stderr=""),
    # the C daemon's stop killed crun only and left the container running.
    "ps-after-stop": dict(stdout=PS_HEADER + "edcde0f4d3481e9b cpw1                 "
                                             "docker.io/library/bb:latest     stopped\n"),
}

_WORD = re.compile(r"(?P<w>\S+)(?P<sp> *)")
_SHAPES = [(re.compile(r"\b[0-9a-f]{16}\b"), "<id>"),
           (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b"), "<ip>")]


def normalize(text: str) -> str:
    """Ids and addresses by shape; the column a padded value fills keeps its width."""

    def word(m: "re.Match") -> str:
        w, sp = m.group("w"), m.group("sp")
        nw = w
        for rx, placeholder in _SHAPES:
            nw = rx.sub(placeholder, nw)
        if nw == w or not sp:
            return nw + sp
        return nw + " " * (len(w) + len(sp) - len(nw))

    return "\n".join(_WORD.sub(word, line) for line in text.split("\n"))


def test_normalize_keeps_widths():
    a = normalize("cpnet                10.211.1.0/24      10.211.1.1\n")
    assert a == normalize("cpnet                10.88.1.0/24       10.88.1.1\n")
    assert a != normalize("cpnet                10.88.1.0/24 10.88.1.1\n")  # a wrong width is seen
    assert normalize("edcde0f4d3481e9b x") == normalize("0123456789abcdef x")
    assert normalize("edcde0f4d348 x") != normalize("0123456789ab x")  # not the 16-hex shape


def transcript_rows() -> List[Row]:
    with open(TRANSCRIPT) as f:
        return parse_transcript(f.read())


def test_transcript_parses():
    rows = transcript_rows()
    assert len(rows) == 34 and len({r.name for r in rows}) == 34
    assert set(DEVIATIONS) <= {r.name for r in rows}
    assert rows[0] == Row("load-c-built", ["image", "load", "<dir>/c-tool-bb.sqfs"], "0e1505a22dadb913\n")
    exit3 = next(r for r in rows if r.name == "run-rm-default-net-exit3")
    assert exit3.argv[-1] == "echo out; echo err >&2; exit 3"
    assert (exit3.stdout, exit3.stderr, exit3.exit) == ("out\n", "err\n", 3)


# ---- the daemon and the two images ----------------------------------------------------------------


@pytest.fixture
def ctcrd():
    name = f"tcr-cdialect-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with managed_tcrd(["--compat-socket", "@" + name], prefix="tcrd-cdialect") as d:
        d.compat = "@" + name
        yield d


@pytest.fixture
def images_dir(tmp_path, busybox_layout):
    """<dir> of the transcript: a C-built image (the C script's format, no id in image-info) and one
    made by tcr-create-image, under the names the transcript shows."""
    from tcr_host.build import create_image

    c_tool_sqfs(tmp_path, repository="library/bb", digest=variant_digest("cdialect-c-built"),
                name="c-tool-bb.sqfs")
    create_image(f"oci:{busybox_layout}:latest", str(tmp_path / "py-bb.sqfs"), name=PY_BUILT_NAME)
    return tmp_path


def c_client(d, argv: List[str], cwd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, CCLIENT, d.compat, *argv], env=_env(), capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)


def state_of(d, ref: str) -> Optional[str]:
    r = d.cli("inspect", ref)
    return json.loads(r.stdout)[0]["state"] if r.returncode == 0 else None


def networks(d) -> List[str]:
    return d.cli("network", "ls", "-q").stdout.split()


# ---- the replay --------------------------------------------------------------------------------


def test_transcript_replay(ctcrd, images_dir):
    d = ctcrd
    rows = transcript_rows()
    ids: Dict[str, str] = {}  # transcript id -> ours
    mismatches = []  # every row is replayed, so one report shows all that differ
    for row in rows:
        argv = [ids.get(a, a).replace("<dir>", str(images_dir)) for a in row.argv]
        want = replace(row, **DEVIATIONS.get(row.name, {}))
        r = c_client(d, argv, cwd=str(images_dir))
        got = Row(row.name, row.argv, r.stdout, r.stderr, r.returncode)
        if (got.exit, normalize(got.stdout), normalize(got.stderr)) != \
                (want.exit, normalize(want.stdout), normalize(want.stderr)):
            mismatches.append(f"row {row.name}: tcr {' '.join(argv)}\n--- want [exit {want.exit}] ---\n"
                              f"{want.stdout}{want.stderr}--- got [exit {got.exit}] ---\n"
                              f"{r.stdout}{r.stderr}")
        for theirs, ours in zip(re.findall(r"\b[0-9a-f]{16}\b", want.stdout),
                                re.findall(r"\b[0-9a-f]{16}\b", got.stdout)):
            ids.setdefault(theirs, ours)
        try:
            AFTER.get(row.name, lambda d: None)(d)
        except AssertionError as exc:
            mismatches.append(f"after row {row.name}: {exc}")
    assert not mismatches, f"{len(mismatches)} of {len(rows)} rows differ:\n" + "\n".join(mismatches) + \
        f"\n--- log ---\n{d.log()}"


def _no_network_none(d):
    assert "none" not in networks(d), "--network none must not make a network"


def _really_stopped(d):
    assert state_of(d, "cpw1") == "exited", "stop must stop the container (the C tool's did not)"


def _killed(d):
    assert state_of(d, "cpw2") == "exited"


def _auto_network(d):
    assert "cpnet" in networks(d)  # made on first use by `run --network cpnet`


def _auto_network_gone(d):
    assert "cpnet" not in networks(d)  # removed with its last container


def _gone(d):
    assert state_of(d, "cpw3") is None and d.cli("ps", "-aq").stdout.strip() == ""


AFTER = {
    "run-rm-network-none(docker flag)": _no_network_none,
    "stop": _really_stopped,
    "run-d-named-net": _auto_network,
    "kill": _killed,
    "rm-2": _auto_network_gone,
    "rm-running(force)": _gone,
}


# ---- beyond the transcript ---------------------------------------------------------------------


def test_own_socket_keeps_docker_dialect(ctcrd, tmp_path):
    """The same requests on tcrd's filesystem socket: docker's words and rules."""
    d = ctcrd
    path = c_tool_sqfs(tmp_path, repository="library/bb", digest=variant_digest("cdialect-own"),
                       name="o.sqfs")
    docker = d.cli("image", "load", path)
    assert docker.returncode == 0 and docker.stdout.splitlines()[1].startswith("Loaded image: ")
    iid = docker.stdout.split()[0]
    assert c_client(d, ["image", "load", path], str(tmp_path)).stdout == iid + "\n"
    r = d.cli("run", "-d", "--network", "nosuchnet", "docker.io/library/bb", "/bin/true")
    assert r.returncode != 0 and "not found" in r.stderr and "nosuchnet" not in networks(d)
    r = d.cli("run", "--no-network", "docker.io/library/bb", "/bin/true")
    assert r.returncode != 0 and "unknown flag" in r.stderr
    cid = c_client(d, ["run", "-d", "--no-network", "--name", "c1", "docker.io/library/bb", "/bin/sleep",
                       "100"], str(tmp_path)).stdout.strip()
    r = d.cli("rm", "c1")  # docker refuses a running container ...
    assert r.returncode != 0 and state_of(d, "c1") == "running"
    assert c_client(d, ["stop", "c1"], str(tmp_path)).stdout == cid + "\n"
    names = ("--format", "{{.Names}}")  # by name: an id may contain "c1"
    assert "c1" not in d.cli("ps", *names).stdout.split() and "c1" in d.cli("ps", "-a", *names).stdout.split()
    ps = c_client(d, ["ps"], str(tmp_path)).stdout
    assert f"{cid} c1 " in ps and ps.rstrip().endswith("stopped")
    assert c_client(d, ["rm", "c1"], str(tmp_path)).stdout == cid + "\n"
    # tcr's own client reaching the compat socket (its fallback) still gets docker's dialect
    own = subprocess.run([sys.executable, "-m", "tcr.cli.main", "--socket", d.compat, "image", "load", path],
                         env=_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert own.returncode == 0 and "Loaded image: " in own.stdout


def test_run_config_file_and_network_rules(ctcrd, tmp_path):
    """--config (the C tool's JSON run file), --network none/NAME, and rm of a running container."""
    d = ctcrd
    c_tool_sqfs(tmp_path, repository="library/bb", digest=variant_digest("cdialect-cfg"), name="bb.sqfs")
    assert c_client(d, ["image", "load", "bb.sqfs"], str(tmp_path)).returncode == 0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hello.txt").write_text("from the host\n")
    cfg = {"image": "docker.io/library/bb:latest", "name": "cfg1", "detached": True,
           "command": ["/bin/sh", "-c", "cat /mnt/hello.txt; echo $GREETING; sleep 100"],
           "env": {"GREETING": "hi-config"}, "mounts": [{"source": "data", "destination": "/mnt",
                                                        "readonly": True}],
           "network": "cfgnet", "stopTimeout": 1}
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    r = c_client(d, ["run", "--config", "run.json"], str(tmp_path))
    assert r.returncode == 0 and re.fullmatch(r"[0-9a-f]{16}\n", r.stdout), r.stderr
    assert "cfgnet" in networks(d)
    wait_for(lambda: "hi-config" in d.cli("logs", "cfg1").stdout, what="the config's env in the log")
    assert d.cli("logs", "cfg1").stdout == "from the host\nhi-config\n"
    # exec -d: tcrd runs it, its output goes to the container's log
    r = c_client(d, ["exec", "-d", "-e", "X=bg", "cfg1", "/bin/sh", "-c", "echo exec-$X"], str(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    wait_for(lambda: "exec-bg" in d.cli("logs", "cfg1").stdout, what="exec -d output in the log")
    r = c_client(d, ["image", "rm", "docker.io/library/bb:latest"], str(tmp_path))
    assert (r.returncode, r.stderr) == (1, "Error (5): image in use by 1 container(s)\n")
    # `network rm` while a container refers to it: the C words
    r = c_client(d, ["network", "rm", "cfgnet"], str(tmp_path))
    assert (r.returncode, r.stderr) == (1, "Error (5): network in use by 1 container(s)\n")
    # rm removes the running container, and the network made for it goes too
    assert c_client(d, ["rm", "cfg1"], str(tmp_path)).returncode == 0
    assert state_of(d, "cfg1") is None and "cfgnet" not in networks(d)
    # --config takes no other argument; a bad file is one line
    r = c_client(d, ["run", "--config", "run.json", "-d"], str(tmp_path))
    assert r.stderr == "Error (6): --config cannot be combined with other arguments\n"
    (tmp_path / "bad.json").write_text('{"image": "x", "bogus": 1}')
    r = c_client(d, ["run", "--config", "bad.json"], str(tmp_path))
    assert r.returncode == 1 and r.stderr.startswith("Error (6): run config: unknown key 'bogus'")
    # --network none: no network at all, not a bridge called "none"
    cid = c_client(d, ["run", "-d", "--network", "none", "--name", "nonet", "docker.io/library/bb",
                       "/bin/sleep", "100"], str(tmp_path)).stdout.strip()
    assert len(cid) == 16 and "none" not in networks(d)
    ex = c_client(d, ["exec", "nonet", "/bin/sh", "-c", "ls /sys/class/net"], str(tmp_path))
    assert ex.stdout.split() == ["lo"], ex
    assert c_client(d, ["kill", "nonet"], str(tmp_path)).stdout == cid + "\n"
    assert c_client(d, ["rm", "nonet"], str(tmp_path)).stdout == cid + "\n"
    # a foreground --rm run on a new network: both go when the client's crun exits
    r = c_client(d, ["run", "--rm", "--network", "fgnet", "docker.io/library/bb", "/bin/sh", "-c",
                     "ip -o -4 addr show eth0 | grep -c inet"], str(tmp_path))
    assert (r.returncode, r.stdout) == (0, "1\n"), r
    wait_for(lambda: "fgnet" not in networks(d), what="the foreground run's network to go")
    # a network made with `network create` is not removed with its containers
    assert d.cli("network", "create", "kept").returncode == 0
    c_client(d, ["run", "--rm", "--network", "kept", "docker.io/library/bb", "/bin/true"], str(tmp_path))
    assert "kept" in networks(d)


def test_auto_network_outlives_a_restart_and_waits_for_every_user(ctcrd, tmp_path):
    d = ctcrd
    c_tool_sqfs(tmp_path, repository="library/bb", digest=variant_digest("cdialect-auto"), name="bb.sqfs")
    assert c_client(d, ["image", "load", "bb.sqfs"], str(tmp_path)).returncode == 0
    run = ["run", "-d", "--network", "autonet", "docker.io/library/bb", "/bin/sleep", "100"]
    assert c_client(d, run[:1] + ["--name", "a1"] + run[1:], str(tmp_path)).returncode == 0
    # a docker-dialect container may join it while it exists; the network then waits for it too
    assert d.cli("run", "-d", "--name", "a2", "--network", "autonet", "docker.io/library/bb",
                 "/bin/sleep", "100").returncode == 0
    d.restart()  # the network's "made on first use" mark is persisted
    assert "autonet" in networks(d)
    assert c_client(d, ["rm", "a1"], str(tmp_path)).returncode == 0
    assert "autonet" in networks(d)
    assert d.cli("rm", "-f", "a2").returncode == 0
    assert "autonet" not in networks(d)


def test_crash_between_rm_and_network_prune(ctcrd, tmp_path):
    """tcrd killed after a container's record is gone but before its auto network is pruned: the
    restart's recovery removes the network, and nothing leaks."""
    from test.root.test_crash_points import kernel_leaks, start_armed

    d = ctcrd
    c_tool_sqfs(tmp_path, repository="library/bb", digest=variant_digest("cdialect-crash"), name="bb.sqfs")
    iid = c_client(d, ["image", "load", "bb.sqfs"], str(tmp_path)).stdout.strip()
    r = c_client(d, ["run", "-d", "--name", "v", "--network", "crashnet", "docker.io/library/bb",
                     "/bin/sleep", "100"], str(tmp_path))
    assert r.returncode == 0, r.stderr
    start_armed(d, "container.rm.after_state_delete")
    r = c_client(d, ["rm", "v"], str(tmp_path))
    assert d.proc.wait(30) == -9 and r.returncode == 1, (r, d.log())
    d.start()  # recovery, without the fault
    assert state_of(d, "v") is None and "crashnet" not in networks(d)
    assert kernel_leaks(d, networks=[], images=[iid]) == []


def test_unknown_and_usage_errors(ctcrd, tmp_path):
    d = ctcrd
    cases = [
        (["run", "--bogus", "x"], "Error (6): unknown option: --bogus\n"),
        (["run", "-d"], "Error (6): no image specified\n"),
        (["run", "-e", "NOEQUALS", "img"], "Error (6): bad -e format, expected KEY=VALUE\n"),
        (["run", "-p", "80", "img"],
         "Error (6): bad -p format, expected [hostIP:]hostPort:containerPort[/proto]\n"),
        (["exec", "x"], "Error (6): no command specified\n"),
        (["exec", "nosuch", "ls"], "Error (2): container not found\n"),
        (["kill"], "Error (6): usage: kill <name_or_id>\n"),
        (["image"], "Error (6): usage: image <load|ls|rm> [args...]\n"),
        (["image", "frob"], "Error (1): unknown image subcommand: frob\n"),
        (["network", "rm", "nosuch"], "Error (4): network not found\n"),
        (["image", "load", "missing.sqfs"], None),
    ]
    for argv, err in cases:
        r = c_client(d, argv, str(tmp_path))
        assert r.returncode == 1 and r.stdout == "", (argv, r)
        if err is not None:
            assert r.stderr == err, argv
        else:
            assert r.stderr.startswith("Error (6): failed to load image: ") and r.stderr.count("\n") == 1
    help_text = c_client(d, ["help"], str(tmp_path))
    assert help_text.returncode == 0 and "--no-network" in help_text.stdout
    # tcr's own commands the C tool lacks are served too
    v = c_client(d, ["version"], str(tmp_path))
    assert v.returncode == 0 and v.stdout.startswith("Server: tcrd ")
    assert d.running()


def test_compat_socket_survives_random_requests(ctcrd):
    """Random C-client argv (flags, values, junk) on the compat socket: every request gets one
    well-formed reply, one-line errors, and the daemon keeps serving. No image is loaded, so no
    container can come of it."""
    import random
    import socket

    from tcr.rpc import protocol

    rnd = random.Random(1818)
    vocab = ["-d", "-t", "-e", "K=V", "K", "--name", "x", "--network", "none", "host", "n1", "--no-network",
             "-v", "/a:/b", "a:b:ro", "-p", "80:80", "1:2:3:4/udp", "--tmpfs", "/t:1", "--config",
             "/nonexistent.json", "/dev/zero", "--restart", "always", "--stop-timeout", "5", "nosuch:img",
             "/bin/true", "ls", "rm", "load", "inspect", "ps", "", "\u00e9\u0000", "a" * 300, "-", "--",
             "../x", "/", "--bogus"]
    methods = ["run", "exec", "ps", "stop", "kill", "rm", "image", "network", "help", "bogus", "logs",
               "inspect", "wait", "x" * 200]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("\0" + ctcrd.compat[1:])
    s.settimeout(60)
    try:
        for i in range(1, 401):
            args = [rnd.choice(vocab) for _ in range(rnd.randint(0, 8))]
            if rnd.random() < 0.3:
                args = rnd.choice([["ls"], ["rm"], ["load"], ["create"], ["inspect"]]) + args
            req = protocol.Request(i, rnd.choice(methods), args, "/tmp", os.getpid())
            s.send(protocol.encode(req))
            reply = protocol.decode_reply(s.recv(protocol.MAX_MESSAGE + 1))
            assert reply.id == i and isinstance(reply, (protocol.Result, protocol.ErrorReply)), (req, reply)
            if isinstance(reply, protocol.ErrorReply):
                assert reply.message and "\n" not in reply.message and reply.code in range(1, 8), (req, reply)
    finally:
        s.close()
    assert c_client(ctcrd, ["ps"], "/tmp").stdout == PS_HEADER and ctcrd.running()


def test_default_compat_name_speaks_c():
    """Without --compat-socket, @tiny_container_runtime (in tcrd's own netns) is the C dialect."""
    class NetnsTcrd(Tcrd):
        def argv(self):
            return ["unshare", "--net", "--"] + [a for a in super().argv() if a != "--no-compat-socket"]

    base = tempfile.mkdtemp(prefix=f"tcrd-cdnet-{os.getpid()}-", dir="/tmp")
    d = NetnsTcrd(base)
    try:
        d.start()
        r = subprocess.run(["nsenter", f"--net=/proc/{d.pid}/ns/net", sys.executable, CCLIENT,
                            "@tiny_container_runtime", "ps"], env=_env(), capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stdout) == (0, PS_HEADER)
        r = subprocess.run(["nsenter", f"--net=/proc/{d.pid}/ns/net", sys.executable, CCLIENT,
                            "@tiny_container_runtime", "bogus"], env=_env(), capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stderr) == (1, "Error (1): unknown command: bogus\n")
        assert d.cli("ps").stdout.startswith("CONTAINER ID")  # its own socket: docker's
    finally:
        if d.running():
            d.stop()
        d.kill9()
        d.force_clean()
        shutil.rmtree(base, ignore_errors=True)
