"""A busybox image for the hardware/volume tests: more applets (mknod, stat, id, ulimit via sh), a
/etc/group with dialout and gpio, content under /seed to seed volumes, EXPOSEd ports 80/tcp and
5353/udp (the annotation tcr-create-image writes). Built like test_containers_image.build."""

import json
import os
import shutil
import subprocess

from test.fixtures.images import image_info, variant_digest
from test.root.test_containers_image import APPLETS, busybox_static

HW_APPLETS = APPLETS + (
    "mknod",
    "stat",
    "grep",
    "od",
    "xxd",
    "hexdump",
    "stty",
    "cut",
    "tr",
    "wc",
    "df",
    "mount",
    "ps",
    "readlink",
    "chmod",
    "mkfifo",
    "realpath",
)


def build_hw(tmpdir: str, seed: str = "a", tag: str = "latest", seed_text: str = "from the image") -> str:
    src = os.path.join(tmpdir, f"hw-{seed}.src")
    shutil.rmtree(src, ignore_errors=True)
    rootfs = os.path.join(src, "bundle", "rootfs")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "usr/bin", "seed/sub"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    shutil.copy2(busybox_static(), os.path.join(rootfs, "bin", "busybox"))
    for a in dict.fromkeys(HW_APPLETS):
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
            "app:x:1000:1000:app:/:/bin/sh\n"
        )
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\ndialout:x:20:\ngpio:x:997:\napp:x:1000:\nnogroup:x:65534:\n")
    with open(os.path.join(rootfs, "seed", "hello.txt"), "w") as f:
        f.write(seed_text + "\n")
    with open(os.path.join(rootfs, "seed", "sub", "deep.txt"), "w") as f:
        f.write("deep\n")
    os.chown(os.path.join(rootfs, "seed"), 1000, 1000)
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "annotations": {
            "org.opencontainers.image.exposedPorts": "80/tcp,5353/udp",
            "com.example.vendor": "acme",
        },
    }
    with open(os.path.join(src, "bundle", "config.json"), "w") as f:
        json.dump(config, f)
    info = image_info(repository="library/hwbox", tag=tag, digest=variant_digest("tcr-hw-" + seed))
    with open(os.path.join(src, "image-info.json"), "w") as f:
        json.dump(info, f)
    out = os.path.join(tmpdir, f"hw-{seed}.sqfs")
    subprocess.run(
        ["mksquashfs", src, out, "-noappend", "-comp", "zstd", "-quiet", "-no-progress"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(src)
    return out
