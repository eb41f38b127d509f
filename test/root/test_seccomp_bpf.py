"""The precompiled seccomp filter (run.oci.seccomp_bpf_data) is exactly what crun compiles itself.

crun writes the program it loads to <state>/<id>/seccomp.bpf. For bundles WITHOUT the annotation,
that is crun's own libseccomp compilation; tcr's must be byte-identical, for the default profile
with several capability sets and for a profile with the rarer rule shapes (errnoRet, argument
filters, a repeated argument index, an unknown syscall, a rule equal to the default action).
Then a real tcrd container: its config carries the annotation and the process runs filtered.
"""

import base64
import json
import os
import shutil
import subprocess

import pytest

from tcr.containers import seccomp, seccomp_bpf
from tcr.containers.ociconfig import HostInfo
from test.fixtures.process import wait_for

pytestmark = pytest.mark.root

BASE_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
             "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
             "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"]
ODD = {  # allow by default (crun's own set-up runs under the filter), deny in the rare shapes
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "syscalls": [
        {"names": ["mkdir", "no_such_syscall_tcr"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},  # == default: skipped
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 3, "op": "SCMP_CMP_LE"}]},
        {"names": ["swapon"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["swapoff"], "action": "SCMP_ACT_ERRNO"},
    ],
}


def _crun_compiles(tmp_path, oci, tag):
    """crun's own seccomp.bpf for a bundle with this linux.seccomp (crun create, read, delete)."""
    root = tmp_path / f"crun-{tag}"
    bundle = tmp_path / f"bundle-{tag}"
    for d in ("bin", "dev", "proc"):
        (bundle / "rootfs" / d).mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, bundle / "rootfs" / "bin" / "busybox")
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/busybox", "true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": str(bundle / "rootfs")},
        "mounts": [],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}],
                  "cgroupsPath": f"/tcr-test-seccomp-{os.getpid()}-{tag}", "seccomp": oci},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    cid = f"tcr-sb-{os.getpid()}-{tag}"
    err = tmp_path / f"crun-{tag}.err"
    with open(err, "w") as ef:  # not a pipe: the created container holds its stdio open
        r = subprocess.run(["crun", "--root", str(root), "create", "--bundle", str(bundle), cid],
                           stdout=subprocess.DEVNULL, stderr=ef, timeout=30, stdin=subprocess.DEVNULL)
    try:
        assert r.returncode == 0, err.read_text()
        return (root / cid / "seccomp.bpf").read_bytes()
    finally:
        subprocess.run(["crun", "--root", str(root), "delete", "--force", cid], capture_output=True,
                       timeout=30)


@pytest.mark.parametrize("extra", [[], ["CAP_SYS_ADMIN"], ["CAP_SYS_PTRACE", "CAP_SYS_BOOT"]],
                         ids=["default", "sys_admin", "ptrace_boot"])
def test_default_profile_is_byte_identical_to_crun(tmp_path, extra):
    host = HostInfo.detect()
    oci = seccomp.default_for(host.arch, BASE_CAPS + extra, host.kernel)
    ours = seccomp_bpf.compile(oci)
    assert ours is not None, "libseccomp not usable from tcr"
    assert ours == _crun_compiles(tmp_path, oci, "d" + str(len(extra)))


def test_rare_rule_shapes_are_byte_identical_to_crun(tmp_path):
    ours = seccomp_bpf.compile(ODD)
    assert ours is not None
    assert ours == _crun_compiles(tmp_path, ODD, "odd")


def test_tcrd_container_runs_with_the_precompiled_filter(tcrd, tmp_path):
    from test.fixtures.images import c_tool_sqfs

    assert tcrd.cli("image", "load", "-q", c_tool_sqfs(tmp_path)).returncode == 0
    r = tcrd.cli("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                 "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /proc/sys/x 2>&1; true")
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t2" in r.stdout and "NoNewPrivs:\t1" in r.stdout, r.stdout
    # The first run's filter was compiled by a worker (tcr.containers.seccomp_cache) meanwhile;
    # a container started once it has finished carries the program.
    def created_with_annotation():
        cid = tcrd.cli("create", "--name", "sbpf", "--network", "none", "busybox", "true").stdout.strip()
        assert tcrd.cli("start", "sbpf").returncode == 0
        with open(os.path.join(tcrd.root, "containers", cid, "bundle", "config.json")) as f:
            got = json.load(f)
        if seccomp_bpf.ANNOTATION in got.get("annotations", {}):
            found.append(got)
            return True
        tcrd.cli("wait", "sbpf")
        assert tcrd.cli("rm", "-f", "sbpf").returncode == 0
        return False

    found: list = []
    wait_for(created_with_annotation, what="the precompiled filter in a new container's config")
    config = found[0]
    data = base64.b64decode(config["annotations"][seccomp_bpf.ANNOTATION])
    assert data == seccomp_bpf.compile(config["linux"]["seccomp"])
    tcrd.cli("wait", "sbpf")
    assert tcrd.cli("rm", "-f", "sbpf").returncode == 0
