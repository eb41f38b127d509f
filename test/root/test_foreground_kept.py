"""Found on the emulated board (make board-test): a container from a foreground `tcr run` without
--rm vanished when tcrd started again (after a reboot), although docker and podman keep an
exited container, its exit code and its logs until `rm`."""

import json

import pytest

from test.root.test_containers import cli, d  # noqa: F401 - fixture

pytestmark = pytest.mark.root

def test_exited_foreground_container_survives_a_daemon_restart(d):  # noqa: F811
    r = d.cli("run", "--name", "said", "--network", "none", "busybox", "sh", "-c", "echo hello-board; exit 3")
    assert r.returncode == 3 and "hello-board" in r.stdout
    d.restart()
    info = json.loads(cli(d, "inspect", "said").stdout)[0]
    # (the exit code of a foreground run is the client's to see: docs/containers.md)
    assert info["state"] == "exited"
    cli(d, "rm", "said")


def test_foreground_run_with_rm_is_still_removed_after_a_restart(d):  # noqa: F811
    r = d.cli("run", "--rm", "--name", "gone", "--network", "none", "busybox", "true")
    assert r.returncode == 0
    d.restart()
    assert "gone" not in cli(d, "ps", "-a").stdout
