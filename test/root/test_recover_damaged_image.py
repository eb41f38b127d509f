"""Found on the emulated board (make board-test): after a power cut, an image whose file did not
mount any more took tcrd down at every start ("cannot start: mount overlay ... No such file or
directory"): the `--restart always` container on it was started during recovery, the overlay
mount failed with an OSError that nothing caught, and systemd restarted tcrd in a loop. Now the
container is left exited with the reason, and tcrd serves everything else."""

import json
import os
import subprocess

import pytest

from test.fixtures.images import c_tool_sqfs

pytestmark = pytest.mark.root


def _power_cut(tcrd):
    """What a power cut does to a board's kernel state: daemon and containers gone, nothing
    mounted, no loop device, no crun state (tmpfs /run)."""
    tcrd.kill9()
    crun_root = os.path.join(tcrd.run_dir, "crun")
    ids = subprocess.run(["crun", "--root", crun_root, "list", "-q"], capture_output=True, text=True).stdout
    for cid in ids.split():
        subprocess.run(["crun", "--root", crun_root, "delete", "-f", cid], capture_output=True)
    tcrd.force_clean()


def test_tcrd_starts_when_an_always_containers_image_no_longer_mounts(tcrd, tmp_path):
    img = c_tool_sqfs(str(tmp_path))
    r = tcrd.cli("image", "load", "-q", img)
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    r = tcrd.cli("run", "-d", "--name", "keep", "--restart", "always", "--network", "none", image_id,
                 "sleep", "1000")
    assert r.returncode == 0, r.stderr
    stored = json.loads(tcrd.cli("image", "inspect", image_id).stdout)[0]["stored"]
    _power_cut(tcrd)
    with open(stored, "r+b") as f:  # what the cut left of a file that never reached the disk
        f.write(b"\0" * 4096)
    tcrd.start()  # used to fail: tcrd exited during recovery
    ps = {c["Names"]: c for c in json.loads(tcrd.cli("ps", "-a", "--format", "json").stdout)}
    assert ps["keep"]["State"] == "exited"
    info = json.loads(tcrd.cli("inspect", "keep").stdout)[0]
    assert image_id in info["error"] and "broken" in info["error"], info["error"]
    assert image_id in tcrd.cli("image", "ls", "-q").stdout
    r = tcrd.cli("start", "keep")  # a clear one-line error, not an internal one
    assert r.returncode != 0 and "broken" in r.stderr and "Traceback" not in r.stderr
    assert tcrd.cli("rm", "-f", "keep").returncode == 0
    assert tcrd.cli("image", "rm", image_id).returncode == 0
