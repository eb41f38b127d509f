"""Bad and hostile images: `tcr image load` refuses them with a clear error and leaves nothing behind.

Classes: not squashfs / empty / truncated squashfs; missing, malformed or hostile image-info.json
(missing fields, wrong types, huge values, oversized file, deep nesting, unsupported version);
`bundlePath` escaping the image (.., absolute, a symlink out of the image, rootfs a symlink);
missing config.json; image-info.json as a symlink or a directory; an architecture that cannot run
here. After every refusal: no record, no mount, no loop device, no staging directory, and the
daemon still loads a good image.

Both validation paths are covered: the normal one (PySquashfsImage reads the file, nothing is
mounted) through the real daemon, and the mount fallback (a board without a Python decompressor:
the image is mounted privately, validated, and must be unmounted again) through the ImageManager.
"""

import json
import os
import shutil
import struct
import subprocess

import pytest

from test.fixtures.daemon import loops_under, mounts_under

pytestmark = pytest.mark.root

DIGEST = "sha256:" + "ab" * 32


def good_info(**over):
    info = {
        "version": 1,
        "image": {"registry": "docker.io", "repository": "library/hostile", "tag": "latest",
                  "digest": DIGEST, "arch": "amd64"},
        "bundlePath": "bundle",
        "created": 1700000000,
    }
    img = over.pop("image", None)
    if img:
        info["image"].update(img)
    info.update(over)
    return info


def without(path):
    info = good_info()
    if "." in path:
        a, b = path.split(".")
        del info[a][b]
    else:
        del info[path]
    return info


def sqfs(tmp, name, entries):
    """Pack entries {relpath: bytes | dict (JSON) | ('link', target) | ('dir',)} as a squashfs."""
    src = os.path.join(str(tmp), name + ".src")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    for rel, what in entries.items():
        p = os.path.join(src, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(what, tuple) and what[0] == "link":
            os.symlink(what[1], p)
        elif isinstance(what, tuple) and what[0] == "dir":
            os.makedirs(p, exist_ok=True)
        else:
            data = what if isinstance(what, bytes) else json.dumps(what).encode()
            with open(p, "wb") as f:
                f.write(data)
    out = os.path.join(str(tmp), name + ".sqfs")
    subprocess.run(["mksquashfs", src, out, "-noappend", "-comp", "gzip", "-quiet", "-no-progress",
                    "-all-root"], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    shutil.rmtree(src)
    return out


def bundle(info, **extra):
    config = {"ociVersion": "1.0.2", "process": {"args": ["/bin/sh"]}, "root": {"path": "rootfs"}}
    e = {"image-info.json": info, "bundle/config.json": config, "bundle/rootfs/etc/hostname": b"hostile\n"}
    for k, v in extra.items():
        k = k.replace("__", "/").replace("_DOT_", ".")
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


# (case id, entries or a callable(tmp) -> path, words the error must contain (lowercase))
CASES = [
    ("no-image-info", {"bundle/config.json": b"{}", "bundle/rootfs/x": b""}, ["image-info.json"]),
    ("info-not-json", bundle(b"{not json"), ["image-info.json"]),
    ("info-not-object", bundle(b"[1,2,3]"), ["image-info.json"]),
    ("info-empty", bundle(b""), ["image-info.json"]),
    ("missing-version", bundle(without("version")), ["version"]),
    ("missing-image", bundle(without("image")), ["image"]),
    ("missing-digest", bundle(without("image.digest")), ["digest"]),
    ("missing-arch", bundle(without("image.arch")), ["arch"]),
    ("missing-repository", bundle(without("image.repository")), ["repository"]),
    ("missing-bundlepath", bundle(without("bundlePath")), ["bundlepath"]),
    ("missing-created", bundle(without("created")), ["created"]),
    ("version-string", bundle(good_info(version="1")), ["version"]),
    ("version-2", bundle(good_info(version=2)), ["version"]),
    ("image-string", bundle(good_info(image=None) | {"image": "busybox"}), ["image"]),
    ("arch-int", bundle(good_info(image={"arch": 64})), ["arch"]),
    ("tag-list", bundle(good_info(image={"tag": ["latest"]})), ["tag"]),
    ("created-string", bundle(good_info(created="yesterday")), ["created"]),
    ("created-negative", bundle(good_info(created=-1)), ["created"]),
    ("created-huge", bundle(good_info(created=10**30)), ["image-info.json"]),
    ("created-float", bundle(good_info(created=1.5)), ["created"]),
    ("tag-huge", bundle(good_info(image={"tag": "t" * 600})), ["tag"]),
    ("repository-huge", bundle(good_info(image={"repository": "r" * 100000})), ["image-info.json"]),
    ("file-over-64k", bundle(good_info(padding="x" * 70000)), ["image-info.json"]),
    ("deep-nesting", bundle(b'{"version":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}"), ["image-info.json"]),
    ("bad-digest", bundle(good_info(image={"digest": "../../etc/passwd"})), ["digest"]),
    ("bad-id", bundle(good_info(image={"id": "../../../../tmp/x"})), ["id"]),
    ("repository-dotdot", bundle(good_info(image={"repository": "../../etc"})), ["repository"]),
    ("bundlepath-dotdot", bundle(good_info(bundlePath="../../etc")), ["bundlepath"]),
    ("bundlepath-absolute", bundle(good_info(bundlePath="/etc")), ["bundlepath"]),
    ("bundlepath-inner-dotdot", bundle(good_info(bundlePath="bundle/../../..")), ["bundlepath"]),
    ("bundlepath-empty", bundle(good_info(bundlePath="")), ["bundlepath"]),
    ("bundlepath-int", bundle(good_info(bundlePath=7)), ["bundlepath"]),
    ("bundlepath-missing-dir", bundle(good_info(bundlePath="elsewhere")), ["elsewhere"]),
    ("bundle-symlink-out", {"image-info.json": good_info(), "bundle": ("link", "/")}, ["bundle"]),
    ("bundle-symlink-up", {"image-info.json": good_info(), "bundle": ("link", "../../../..")}, ["bundle"]),
    ("rootfs-symlink-out", bundle(good_info(), bundle__rootfs__etc__hostname=None,
                                  bundle__rootfs=("link", "/")), ["rootfs"]),
    ("config-missing", bundle(good_info(), bundle__config_DOT_json=None), ["config.json"]),
    ("config-symlink", bundle(good_info(), bundle__config_DOT_json=("link", "/etc/passwd")), ["config.json"]),
    ("info-symlink", {"image-info.json": ("link", "/etc/passwd"), "bundle/config.json": b"{}",
                      "bundle/rootfs/x": b""}, ["image-info.json"]),
    ("info-directory", {"image-info.json/x": b"1", "bundle/config.json": b"{}", "bundle/rootfs/x": b""},
     ["image-info.json"]),
    ("arch-arm64", bundle(good_info(image={"arch": "arm64"})), ["architecture", "arm64"]),
    ("arch-s390x", bundle(good_info(image={"arch": "s390x"})), ["architecture", "s390x"]),
    ("arch-riscv64", bundle(good_info(image={"arch": "riscv64"})), ["architecture"]),
]


def raw_cases(tmp):
    """Files that are not (whole) squashfs images: (id, path, words)."""
    good = sqfs(tmp, "for-truncation", bundle(good_info(image={"digest": "sha256:" + "cd" * 32})))
    with open(good, "rb") as f:
        used = struct.unpack_from("<Q", f.read(96), 40)[0]  # superblock bytes_used (the file is padded)
    out = []
    for label, keep in (("truncated-3", 3), ("truncated-superblock", 60), ("truncated-half", used // 2),
                        ("truncated-last-byte", used - 1)):
        p = os.path.join(str(tmp), f"{label}.sqfs")
        with open(good, "rb") as f, open(p, "wb") as g:
            g.write(f.read(keep))
        out.append((label, p, []))
    p = os.path.join(str(tmp), "random.sqfs")
    with open(p, "wb") as f:
        f.write(os.urandom(8192))
    out.append(("random-bytes", p, ["squashfs"]))
    p = os.path.join(str(tmp), "empty.sqfs")
    open(p, "wb").close()
    out.append(("empty-file", p, ["squashfs"]))
    p = os.path.join(str(tmp), "corrupt-tables.sqfs")
    with open(good, "rb") as f:
        data = bytearray(f.read())
    for i in range(96, len(data), 7):  # keep the superblock, scramble everything after it
        data[i] ^= 0x5A
    with open(p, "wb") as f:
        f.write(data)
    out.append(("corrupt-after-superblock", p, []))
    d = os.path.join(str(tmp), "a-directory.sqfs")
    os.mkdir(d)
    out.append(("directory", d, []))
    out.append(("no-such-file", os.path.join(str(tmp), "nope.sqfs"), ["no such file"]))
    return out


def all_cases(tmp):
    return [(cid, sqfs(tmp, cid, entries), words) for cid, entries, words in CASES] + raw_cases(tmp)


def leftovers(base, images_dir):
    found = [f"mount: {m}" for m in mounts_under(base)] + [f"loop: {x}" for x in loops_under(base)]
    try:
        found += [f"file: {n}" for n in os.listdir(images_dir)]
    except FileNotFoundError:
        pass
    return found


def test_hostile_images_refused_cleanly_by_tcrd(tcrd, tmp_path):
    images_dir = os.path.join(tcrd.root, "images")
    failures = []
    for cid, path, words in all_cases(tmp_path):
        r = tcrd.cli("image", "load", path)
        err = r.stderr.strip().splitlines()
        problem = None
        if r.returncode == 0:
            problem = f"loaded! stdout={r.stdout!r}"
        elif r.returncode != 1:
            problem = f"exit code {r.returncode}, expected 1"
        elif not err or not err[0].startswith("tcr: ") or len(err) > 2 or (
                len(err) == 2 and not err[1].startswith("hint: ")):
            problem = f"not a one-line error: {r.stderr!r}"
        elif "traceback" in r.stderr.lower() or "internal error" in r.stderr.lower():
            problem = f"internal error instead of a clear refusal: {r.stderr!r}"
        elif not all(w in err[0].lower() for w in words):
            problem = f"message lacks {words}: {err[0]!r}"
        left = leftovers(tcrd.base, images_dir)
        if left:
            problem = (problem or "") + f" LEFT BEHIND: {left}"
        if problem:
            failures.append(f"{cid}: {problem}")
        print(f"{cid:28s} -> {err[0] if err else ''}")
    assert tcrd.running(), tcrd.log()
    r = tcrd.cli("image", "ls", "-q")
    assert r.returncode == 0 and r.stdout.strip() == "", r
    assert not failures, "\n".join(failures)
    # The daemon is alive and correct afterwards: a good image loads and goes away cleanly.
    good = sqfs(tmp_path, "good", bundle(good_info()))
    r = tcrd.cli("image", "load", "-q", good)
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    assert tcrd.cli("image", "ls", "-q").stdout.split() == [iid]
    assert tcrd.cli("image", "rm", iid).returncode == 0


def test_hostile_images_refused_cleanly_through_the_mount_fallback(tmp_path, monkeypatch):
    """A board without PySquashfsImage's decompressor validates through a private mount."""
    from tcr.common.errors import TcrError
    from tcr.daemon.state import StateStore
    from tcr.images import manager as imanager
    from tcr.images import reader

    def needs_mount(path):
        reader.check_magic(path)
        raise reader.NeedsMount("test: no decompressor")

    monkeypatch.setattr(reader, "read_file", needs_mount)
    root = tmp_path / "root"
    root.mkdir()
    mgr = imanager.ImageManager(str(root), StateStore(str(root)), machine="x86_64")
    images_dir = os.path.join(str(root), "images")
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    failures = []
    try:
        for cid, path, words in all_cases(cases_dir):
            problem = None
            try:
                rec = mgr.load(path)
                problem = f"loaded as {rec.id}"
            except TcrError as exc:
                msg = exc.message.lower()
                if "\n" in exc.message:
                    problem = f"multi-line message {exc.message!r}"
                # Through a mount the kernel, not the parser, refuses some damaged files: their
                # message names the file, which is all the user can act on.
                elif not all(w in msg for w in words) and not (words == [] or os.path.basename(path) in msg):
                    problem = f"message lacks {words}: {exc.message!r}"
            except Exception as exc:  # anything else is a bug: the daemon would report "internal"
                problem = f"raised {type(exc).__name__}: {exc}"
            left = leftovers(str(tmp_path), images_dir)
            if left:
                problem = (problem or "") + f" LEFT BEHIND: {left}"
            if problem:
                failures.append(f"{cid}: {problem}")
        assert mgr.records == {}
        assert not failures, "\n".join(failures)
        good = sqfs(cases_dir, "good", bundle(good_info()))
        rec = mgr.load(good)
        assert mgr.is_mounted(rec)
        mgr.remove(rec.id)
        assert leftovers(str(tmp_path), images_dir) == []
    finally:
        from tcr.kernel import loopdev
        from tcr.kernel import mount as kmount

        for m in mounts_under(str(tmp_path)):
            kmount.umount_quiet(m, kmount.UMOUNT_NOFOLLOW | kmount.MNT_DETACH)
        for n, bf in loopdev.attached().items():
            if bf.startswith(str(tmp_path)):
                try:
                    loopdev.detach(n)
                except OSError:
                    pass
