"""A busybox squashfs image for the container tests, built directly from busybox-static.

No umoci and no shared cache lock: a rootfs with /bin/busybox and its applet links, the OCI
runtime config.json a tcr-create-image would write, image-info.json v1; `mksquashfs -comp zstd`.
"""

import json
import os
import shutil
import subprocess
from typing import Dict, Optional

from test.fixtures.images import image_info, variant_digest

APPLETS = ("sh", "true", "false", "echo", "cat", "ls", "sleep", "yes", "id", "kill", "touch", "rm",
           "mkdir", "head", "tail", "wc", "env", "hostname", "ps", "grep", "seq", "dd", "date", "printf",
           "test", "[", "nproc", "trap")


def busybox_static() -> str:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")


def build(tmpdir: str, name: str = "busybox-ctr.sqfs", tag: str = "latest", variant: str = "",
          annotations: Optional[Dict[str, str]] = None) -> str:
    """variant: another build of the same name:tag (its own digest, so its own image id);
    annotations: the bundle config's (what tcr-create-image writes, e.g. the image's HEALTHCHECK)."""
    src = os.path.join(tmpdir, name + ".src")
    shutil.rmtree(src, ignore_errors=True)
    rootfs = os.path.join(src, "bundle", "rootfs")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "usr/bin"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    shutil.copy2(busybox_static(), os.path.join(rootfs, "bin", "busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    config = {"ociVersion": "1.0.2",
              "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                          "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                          "cwd": "/"},
              "root": {"path": "rootfs"}}
    if annotations:
        config["annotations"] = dict(annotations)
    with open(os.path.join(src, "bundle", "config.json"), "w") as f:
        json.dump(config, f)
    digest = variant_digest("tcr-containers-" + tag + variant)
    info = image_info(repository="library/busybox", tag=tag, digest=digest)
    with open(os.path.join(src, "image-info.json"), "w") as f:
        json.dump(info, f)
    out = os.path.join(tmpdir, name)
    subprocess.run(["mksquashfs", src, out, "-noappend", "-comp", "zstd", "-quiet", "-no-progress",
                    "-all-root"], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    shutil.rmtree(src)
    return out
