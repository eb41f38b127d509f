import pytest
from test.fixtures.images import c_tool_sqfs

@pytest.mark.root
def test_smoke(tcrd, tmp_path):
    p = c_tool_sqfs(tmp_path, sidecar=True)
    r = tcrd.cli("image", "load", p); print(r)
    r = tcrd.cli("image", "ls"); print(r.stdout, r.stderr)
    r = tcrd.cli("image", "inspect", "busybox"); print(r.stdout, r.stderr)
    r = tcrd.cli("image", "verify", "busybox"); print(r.stdout, r.stderr)
    print(tcrd.log())
