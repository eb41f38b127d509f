"""`tcr -H ssh://...` against a real sshd on 127.0.0.1 (keys made here) and a real tcrd."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from test.fixtures import sshd as sshd_fixture
from test.fixtures.images import c_tool_sqfs
from test.fixtures.process import wait_for

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_free_port = sshd_fixture._free_port


def _read(path):
    with open(path, errors="replace") as f:
        return f.read()


@pytest.fixture
def sshd(tcrd):
    """sshd on 127.0.0.1:PORT whose sessions find a `tcr` wired to the tcrd under test."""
    if not sshd_fixture.available():
        pytest.skip("openssh-server/openssh-client not installed")
    with sshd_fixture.managed_sshd(tcrd.socket) as board:
        d = board.dir
        opts = (
            f"-i {board.key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"-o LogLevel=ERROR -o IdentitiesOnly=yes"
        )
        try:
            yield type("Sshd", (), {"url": f"ssh://root@127.0.0.1:{board.port}", "opts": opts, "dir": d,
                                    "port": board.port, "log": os.path.join(d, "sshd.log")})
        finally:
            close_shared_connections(d)  # before the server goes


def close_shared_connections(d):
    """Stop the ssh masters the tests' commands started (their sockets are under d/tcr-ssh)."""
    sockets = os.path.join(d, "tcr-ssh")
    for name in os.listdir(sockets) if os.path.isdir(sockets) else ():
        subprocess.run(["ssh", "-o", f"ControlPath={os.path.join(sockets, name)}", "-O", "exit", "x"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=30)


def local_tcr(sshd, *args, cwd=None, host=None, opts=None):
    # XDG_RUNTIME_DIR: the shared connections' sockets go under the fixture's directory
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "target"), TCR_SSH_OPTS=opts or sshd.opts,
               XDG_RUNTIME_DIR=sshd.dir)
    env.pop("TCR_SOCKET", None)
    return subprocess.run(
        [sys.executable, "-m", "tcr.cli.main", "-H", host or sshd.url, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_remote_image_load_and_ls(tcrd, sshd):
    work = tempfile.mkdtemp(prefix=f"tcr-ssh-img-{os.getpid()}-")
    try:
        img = c_tool_sqfs(work, name="my image.sqfs", sidecar=True)
        r = local_tcr(sshd, "image", "load", "./" + os.path.basename(img), cwd=work)
        assert r.returncode == 0, r.stderr
        image_id = r.stdout.strip().split()[-1]

        # the file went through the daemon's incoming dir (with its sidecar) and was consumed by the
        # load: the image store holds it now, nothing is left behind
        incoming = os.path.join(tcrd.root, "incoming")
        assert os.path.isdir(incoming)
        assert os.listdir(incoming) == []
        v = tcrd.cli("image", "verify", image_id)
        assert v.returncode == 0, v.stderr

        r = local_tcr(sshd, "image", "ls", "--format", "json")
        assert r.returncode == 0, r.stderr
        remote = json.loads(r.stdout)
        local = json.loads(tcrd.cli("image", "ls", "--format", "json").stdout)
        assert remote == local
        assert image_id in r.stdout or any(image_id.startswith(str(i.get("id", "-"))) for i in remote)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_image_load_with_the_port_in_tcr_ssh_opts(tcrd, sshd):
    """TCR_SSH_OPTS="-p PORT" used to reach scp as is, where -p means "preserve times" and PORT
    became a file to copy: `image load` failed while every other command worked."""
    work = tempfile.mkdtemp(prefix=f"tcr-ssh-port-{os.getpid()}-")
    try:
        img = c_tool_sqfs(work, sidecar=True)
        opts = f"{sshd.opts} -p {sshd.port}"
        r = local_tcr(sshd, "image", "load", "-q", img, host="ssh://root@127.0.0.1", opts=opts)
        assert r.returncode == 0, r.stderr
        assert tcrd.cli("image", "verify", r.stdout.strip()).returncode == 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_sequence_of_commands_pays_one_handshake(tcrd, sshd):
    """The first command starts a shared connection (ControlMaster) in a private 0700 directory;
    the next commands and all three steps of `image load` ride on it."""
    work = tempfile.mkdtemp(prefix=f"tcr-ssh-mux-{os.getpid()}-")
    try:
        img = c_tool_sqfs(work)
        for args in (["ps"], ["image", "load", "-q", img], ["image", "ls"], ["version"]):
            r = local_tcr(sshd, *args)
            assert r.returncode == 0, r.stderr
        accepted = [line for line in _read(sshd.log).splitlines() if "Accepted publickey" in line]
        assert len(accepted) == 1, accepted
        st = os.stat(os.path.join(sshd.dir, "tcr-ssh"))
        assert st.st_mode & 0o777 == 0o700
        # the user can still turn it off
        r = local_tcr(sshd, "ps", opts=sshd.opts + " -o ControlMaster=no -o ControlPath=none")
        assert r.returncode == 0, r.stderr
        accepted = [line for line in _read(sshd.log).splitlines() if "Accepted publickey" in line]
        assert len(accepted) == 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_remote_exit_codes_and_quoting(tcrd, sshd):
    # arguments arrive untouched (quoting) and errors keep their exit codes across ssh
    r = local_tcr(sshd, "image", "rm", "no such; image $(id)")
    assert r.returncode == 1
    assert "no such; image $(id)" in r.stderr
    r = local_tcr(sshd, "frobnicate")
    assert r.returncode == 125 and "unknown command" in r.stderr
    r = local_tcr(sshd, "version")
    assert r.returncode == 0 and "Server: tcrd" in r.stdout


def test_ssh_connection_failure(sshd):
    r = local_tcr(sshd, "ps", host=f"ssh://root@127.0.0.1:{_free_port()}")
    assert r.returncode == 125  # tcr itself failed (docker/podman), in every command
    assert "tcr: ssh to ssh://root@127.0.0.1:" in r.stderr and "failed" in r.stderr


def test_remote_interactive_run_gets_a_terminal_and_the_exit_code(tcrd, sshd):
    """`tcr -H ssh://... run -it`: ssh -t gives the remote client a terminal, crun gives it to the
    container, and the container's exit code comes back through ssh. `script` provides the local
    terminal the way a user's shell would."""
    if not shutil.which("script"):
        pytest.skip("script (util-linux) not installed")
    work = tempfile.mkdtemp(prefix=f"tcr-ssh-it-{os.getpid()}-")
    try:
        img = c_tool_sqfs(work)
        r = tcrd.cli("image", "load", "-q", img)
        assert r.returncode == 0, r.stderr
        script = "'tty; echo in-container; exit 3'"
        cmd = " ".join([sys.executable, "-m", "tcr.cli.main", "-H", sshd.url, "run", "-it", "--rm",
                        "--network", "none", r.stdout.strip(), "sh", "-c", script])
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "target"), TCR_SSH_OPTS=sshd.opts,
                   XDG_RUNTIME_DIR=sshd.dir)
        env.pop("TCR_SOCKET", None)
        rr = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
        assert rr.returncode == 3, (rr.stdout, rr.stderr)
        assert "/dev/pts/" in rr.stdout and "in-container" in rr.stdout
        # --rm: tcrd cleans up once the remote client is gone (asynchronously, so wait for it)
        wait_for(lambda: tcrd.cli("ps", "-aq").stdout.strip() == "", what="the --rm container to go")
    finally:
        shutil.rmtree(work, ignore_errors=True)
