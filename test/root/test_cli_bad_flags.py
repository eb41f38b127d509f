"""Bad flags and values at the real CLI + daemon: a one-line error (plus at most one hint line),
exit 125 for every flag error (docker's "tcr itself failed"; it was 2 outside the run-like
commands), 1 for a refused value of an existing object, and nothing is created or changed.
"""

import os

import pytest

pytestmark = pytest.mark.root

IMG = "cbf"  # the tiny image loaded for these tests (docker.io/library/cbf:latest)

# Each: argv after `tcr`. The image exists, so every refusal is about the flag or value itself.
RUN_LIKE_BAD = [
    ["run", "--bogus", IMG], ["run", "-Z", IMG], ["run"], ["run", "-d"], ["run", "-e"],
    ["run", "-p", "notaport", IMG], ["run", "-p", "70000:80", IMG], ["run", "-p", "80:0", IMG],
    ["run", "-p", "1.2.3:80:80", IMG], ["run", "-p", "80:80/sctp", IMG],
    ["run", "-v", "nocolon", IMG], ["run", "-v", "/tmp:relative", IMG],
    ["run", "-v", "/tmp:/x:rw:bogus", IMG],
    ["run", "--tmpfs", "relative", IMG], ["run", "--network", "bad name", IMG],
    ["run", "--network", "no-such-net-cbf", IMG],
    ["run", "--restart", "sometimes", IMG], ["run", "--restart", "on-failure:x", IMG],
    ["run", "--stop-timeout", "x", IMG], ["run", "--memory", "lots", IMG], ["run", "--memory", "-5m", IMG],
    ["run", "--cpus", "-1", IMG], ["run", "--cpus", "abc", IMG], ["run", "--pids-limit", "x", IMG],
    ["run", "--cap-add", "BOGUS", IMG], ["run", "--cap-drop", "NOPE", IMG],
    ["run", "--name", "bad name!", IMG], ["run", "--name", "x" * 300, IMG],
    ["run", "--workdir", "relative", IMG], ["run", "--env-file", "/nonexistent-cbf", IMG],
    ["run", "--config", "/nonexistent-cbf"], ["run", "--read-only=maybe", IMG],
    ["run", "--hostname", "bad host!", IMG], ["run", "--user", "", IMG],
    ["run", "-it", "--restart", "always", "--rm", IMG],  # (--restart alone needs no -d: issue 13)
    ["run", "no-such-image-cbf"],
    ["create", "--bogus", IMG], ["create", "--restart", "sometimes", IMG], ["create"],
    ["start"], ["start", "--bogus", "x"], ["start", "no-such-container-cbf"],
    ["exec"], ["exec", "-d"], ["exec", "--bogus", "x", "ls"], ["exec", "no-such-container-cbf", "ls"],
]
USAGE_BAD = [
    ["ps", "--bogus"], ["ps", "-q", "extra-arg"], ["image"], ["image", "frob"], ["image", "rm"],
    ["image", "load"], ["image", "ls", "--bogus"], ["images", "--bogus"], ["network"], ["network", "frob"],
    ["network", "create"], ["network", "rm"], ["network", "ls", "--bogus"], ["stop", "-t", "abc", "x"],
    ["stop"], ["kill"], ["rm"], ["rm", "--bogus", "x"], ["logs"], ["logs", "-n", "x", "y"], ["inspect"],
    ["wait"], ["nosuchcmd"], ["ps", "--format", "{{.Names"], ["ps", "--filter", "bogus=1"],
    ["ps", "--filter", "noequals"], ["inspect", "-f", "{{if .X}}", "x"],
    ["images", "--format", "{{nofunc .X}}"],
    ["cp"], ["cp", "x:/a"], ["cp", "--bogus", "x:/a", "/tmp"], ["cp", "x:/a", "/tmp", "extra"],
    ["network", "connect"], ["network", "connect", "n"], ["network", "connect", "--bogus", "n", "c"],
    ["network", "connect", "--ip"], ["network", "disconnect", "n"], ["network", "disconnect", "-x", "n", "c"],
]
# Bad values outside the run-like commands: refused with a one-line error (1, or 125 for a flag).
VALUE_BAD = [
    ["network", "create", "--subnet", "999.1.1.1/8", "cbfnet"],
    ["network", "create", "--subnet", "10.0.0.0/33", "cbfnet"],
    ["network", "create", "bad name!"], ["kill", "-s", "NOSIG", "x"], ["image", "rm", "no-such-image-cbf"],
    ["image", "load", "/nonexistent-cbf.sqfs"],
    ["cp", "no-such-container-cbf:/a", "/tmp"], ["cp", "/tmp/a", "/tmp/b"],
    ["network", "connect", "no-such-net-cbf", "no-such-container-cbf"],
    ["network", "connect", "--alias", "bad alias!", "tcr_default", "no-such-container-cbf"],
    ["network", "disconnect", "tcr_default", "no-such-container-cbf"],
]


def _one_line(stderr: str) -> bool:
    lines = stderr.strip().splitlines()
    return 1 <= len(lines) <= 2 and lines[0].startswith("tcr: ") and (
        len(lines) == 1 or lines[1].startswith("hint: "))


def test_bad_flags_and_values(tcrd, tmp_path):
    from test.fixtures.images import tiny_sqfs
    from test.root.test_bad_images import good_info
    from test.root.test_crash_points import crun_ids, kernel_leaks

    img = tiny_sqfs(tmp_path, good_info(image={"repository": "library/cbf"}), name="cbf.sqfs")
    r = tcrd.cli("image", "load", "-q", img)
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    failures = []
    for argv, want in [(a, {125}) for a in RUN_LIKE_BAD] + [(a, {125}) for a in USAGE_BAD] + \
            [(a, {1, 125}) for a in VALUE_BAD]:
        r = tcrd.cli(*argv, cwd=str(tmp_path))
        if r.returncode not in want or not _one_line(r.stderr) or "Traceback" in r.stderr:
            failures.append(f"tcr {' '.join(argv)[:80]}: exit {r.returncode} (want {sorted(want)}), "
                            f"stderr={r.stderr[:300]!r}")
    # Nothing was created or changed by any of them.
    r = tcrd.cli("ps", "-a", "-q")
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout
    assert tcrd.cli("image", "ls", "-q").stdout.split() == [iid]
    assert "cbfnet" not in tcrd.cli("network", "ls").stdout
    assert crun_ids(tcrd) == []
    cdir = os.path.join(tcrd.root, "containers")
    assert not os.path.isdir(cdir) or os.listdir(cdir) == []
    assert kernel_leaks(tcrd, images=[iid]) == []
    assert not failures, "\n".join(failures)


def test_global_usage_errors_exit_125(tcrd):
    for argv in (["--bogus", "ps"], ["--socket"], [], ["-H"]):
        r = tcrd.cli(*argv)
        assert r.returncode == 125, (argv, r.returncode, r.stderr)
        first = r.stderr.strip().splitlines()[0]
        # The error (when there is one) comes first, then the usage text.
        assert first.startswith("tcr: ") or first.startswith("Usage:"), r.stderr
