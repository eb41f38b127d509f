#!/usr/bin/env python3
"""`make demo`: the whole tcr story on one machine, offline, cleaned up afterwards.

1. build PC: an offline busybox OCI image is pushed to a local docker-registry on 127.0.0.1,
   and `tcr-create-image` turns it into a zstd squashfs (no root needed for this step);
2. device: `tcrd` starts on a temporary state root; `tcr image load`, a greeting container,
   a detached web server with a published port, `tcr ps`, `tcr logs`, stop and rm.
Every command is printed before it runs, like a terminal session.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "target"), os.path.join(REPO, "host_tools"), REPO]

from test.conftest import fix_hybrid_cgroups  # noqa: E402
from test.fixtures.daemon import Tcrd, leak_report  # noqa: E402
from test.fixtures.registry import BUSYBOX_REPO, Registry, push_busybox  # noqa: E402

BOLD, RESET = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def show(argv, shown: int = 0, name: str = "", **kw) -> subprocess.CompletedProcess:
    """Run argv; print it as a user would type it (`name` replacing the first `shown` words)."""
    words = ([name] if name else []) + [a if " " not in a else repr(a) for a in argv[shown:]]
    print(f"$ {' '.join(words)}", flush=True)
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    sys.stdout.write(r.stdout)
    sys.stdout.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"demo step failed (exit {r.returncode}): {' '.join(argv)}")
    return r


def main() -> int:
    if os.geteuid() != 0:
        print("make demo runs tcrd, which needs root (loop devices, mounts, crun): run it as root",
              file=sys.stderr)
        return 1
    fix_hybrid_cgroups()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "target"),
                                                        os.path.join(REPO, "host_tools")]))
    work = tempfile.mkdtemp(prefix="tcr-demo-")
    reg = daemon = None
    try:
        say("Build PC: a busybox image in a local registry (offline), then tcr-create-image")
        os.makedirs(os.path.join(work, "registry"))
        reg = Registry(os.path.join(work, "registry"))
        push_busybox(reg.addr)
        sqfs = os.path.join(work, "busybox.sqfs")
        create_image = [sys.executable, "-m", "tcr_host.cli"]
        show(create_image + ["--tls-verify=false", "-q", "-o", sqfs, f"{reg.addr}/{BUSYBOX_REPO}:latest"],
             shown=3, name="tcr-create-image", env=env)
        show(create_image + ["inspect", sqfs], shown=3, name="tcr-create-image", env=env)

        say("Device: start tcrd on a temporary state root")
        daemon = Tcrd(os.path.join(work, "device"))
        os.makedirs(daemon.base, exist_ok=True)
        daemon.start()
        print(f"tcrd running as pid {daemon.pid}, socket {daemon.socket}")
        tcr = [sys.executable, "-m", "tcr.cli.main", "--socket", daemon.socket]
        print(f"(below, `tcr` stands for `{' '.join(tcr[:3])} --socket {daemon.socket}`)")
        image = f"{reg.addr}/{BUSYBOX_REPO}:latest"

        show(tcr + ["image", "load", sqfs], shown=5, name="tcr", env=env)
        show(tcr + ["image", "ls"], shown=5, name="tcr", env=env)

        say("Run a container that prints a greeting")
        show(tcr + ["run", "--rm", "--network", "none", image, "echo", "Hello from a tcr container!"],
             shown=5, name="tcr", env=env)

        say("A detached web server on the NAT network, port 80 published on the host as 18080")
        show(tcr + ["run", "-d", "--name", "demo-web", "-p", "127.0.0.1:18080:80", image,
                    "httpd", "-f", "-v", "-p", "80", "-h", "/var/www"], shown=5, name="tcr", env=env)
        show(tcr + ["ps"], shown=5, name="tcr", env=env)
        print("$ wget -qO- http://127.0.0.1:18080/")
        try:
            print(urllib.request.urlopen("http://127.0.0.1:18080/", timeout=5).read().decode(), end="")
        except OSError as exc:
            print(f"(request failed: {exc})")
        show(tcr + ["exec", "demo-web", "cat", "/etc/hostname"], shown=5, name="tcr", env=env)
        show(tcr + ["logs", "demo-web"], shown=5, name="tcr", env=env)
        show(tcr + ["stop", "-t", "2", "demo-web"], shown=5, name="tcr", env=env)
        show(tcr + ["ps", "-a"], shown=5, name="tcr", env=env)
        show(tcr + ["rm", "demo-web"], shown=5, name="tcr", env=env)
        show(tcr + ["image", "rm", image], shown=5, name="tcr", env=env)
        say("Done: everything the demo made is being removed")
        return 0
    finally:
        if daemon is not None:
            daemon.remove_all_containers_and_networks()
            daemon.remove_all_images()
            daemon.stop()
            leaks = leak_report(daemon.base) + daemon.net_leftovers()
            daemon.force_clean_net()
            daemon.force_clean()
            if leaks:
                print("\n".join(leaks), file=sys.stderr)
        if reg is not None:
            reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
