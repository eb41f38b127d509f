"""kernel/cgroupfs: where a container's memory cgroup is, and its OOM-kill counter (fake trees)."""

import os

from tcr.kernel.cgroupfs import Cgroups

CG = "/tcr/0123456789abcdef"


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_v1_memory_oom_control(tmp_path):
    """Hybrid (this dev VM: memory on v1) and pure v1: memory.oom_control's oom_kill."""
    root = str(tmp_path)
    _write(f"{root}/memory/memory.limit_in_bytes", "9223372036854771712\n")
    _write(f"{root}/unified/cgroup.controllers", "\n")
    _write(f"{root}/memory{CG}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    cg = Cgroups.of_path(CG, root=root)
    assert cg.v1 == {"memory": f"{root}/memory{CG}"} and cg.v2 == f"{root}/unified{CG}"
    assert cg.oom_kills() == 2
    _write(f"{root}/memory{CG}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert cg.oom_kills() == 0


def test_v2_memory_events(tmp_path):
    """Pure v2 (the arm64 board): memory.events' oom_kill, not oom (which counts OOM episodes)."""
    root = str(tmp_path)
    _write(f"{root}/cgroup.controllers", "cpu memory pids\n")
    _write(f"{root}{CG}/memory.events", "low 0\nhigh 0\nmax 31\noom 3\noom_kill 1\noom_group_kill 0\n")
    cg = Cgroups.of_path(CG, root=root)
    assert cg.v1 == {} and cg.v2 == f"{root}{CG}" and cg.oom_kills() == 1


def test_gone_or_unknown_is_none(tmp_path):
    root = str(tmp_path)
    assert Cgroups.of_path(CG, root=root).oom_kills() is None  # no cgroupfs at all
    _write(f"{root}/memory/memory.limit_in_bytes", "1\n")
    _write(f"{root}/memory{CG}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")  # kernel < 4.13
    assert Cgroups.of_path(CG, root=root).oom_kills() is None


def test_the_daemons_small_reader_agrees(tmp_path):
    """tcrd reads the counter through tcr.kernel.cgroupmem (not cgroupfs, the stats code): the
    same answers on v1, v2 and a cgroup that is gone."""
    from tcr.kernel.cgroupmem import oom_kills_at

    root = str(tmp_path)
    assert oom_kills_at(CG, root=root) is None
    _write(f"{root}/cgroup.controllers", "cpu memory pids\n")
    _write(f"{root}{CG}/memory.events", "oom 3\noom_kill 4\n")
    assert oom_kills_at(CG, root=root) == 4 == Cgroups.of_path(CG, root=root).oom_kills()
    _write(f"{root}/memory/memory.limit_in_bytes", "1\n")
    _write(f"{root}/memory{CG}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    assert oom_kills_at(CG, root=root) == 5 == Cgroups.of_path(CG, root=root).oom_kills()
