"""Shared pytest set-up.

- `@pytest.mark.root` tests need root and real kernel features; elsewhere they skip with a reason.
- The hybrid-cgroup quirk of this machine (hugetlb on v2, which crun refuses) is fixed once per
  session, as `tcr check` advises.
- Fixture images are built offline (test/fixtures/oci_layout.py) and cached.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "target"), os.path.join(ROOT, "host_tools"), ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (loop devices, mounts, netns, nftables, crun)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def fix_hybrid_cgroups() -> None:
    """Move hugetlb off cgroup v2 when v1 hierarchies are mounted (crun refuses hybrid v2 controllers)."""
    unified = "/sys/fs/cgroup/unified/cgroup.controllers"
    try:
        with open(unified) as f:
            controllers = f.read().split()
    except OSError:
        return
    if "hugetlb" in controllers and not os.path.ismount("/sys/fs/cgroup/hugetlb"):
        os.makedirs("/sys/fs/cgroup/hugetlb", exist_ok=True)
        os.system("mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb")


@pytest.fixture(scope="session", autouse=True)
def _session_setup():
    if IS_ROOT:
        fix_hybrid_cgroups()
    yield


@pytest.fixture(scope="session")
def busybox_layout():
    """Path of the offline busybox OCI layout (tags: latest/native = amd64, arm64)."""
    if not IS_ROOT:
        pytest.skip("building the fixture OCI layout needs root (uid 1000 owner)")
    from test.fixtures.oci_layout import busybox_layout as build

    return build()


from test.fixtures.daemon import tcrd  # noqa: E402,F401  (the shared real-daemon fixture)
from test.fixtures.registry import registry  # noqa: E402,F401  (docker-registry on 127.0.0.1)
