"""The daemon's import floor: what tcrd loads for its idle loop and common requests stays within an
explicit allow-list (docs/profile.md has what each module costs and what was removed or deferred).

A module missing from the list fails here: either load it lazily (in the command that needs it, or in
a worker: tcr.daemon.worker) or, if every daemon needs it, add it below with its cost measured
(bench/bench_memory.py). test/root/test_idle_imports.py checks the same list against a real tcrd
after a workload (lazy imports on request paths included), through the hidden `tcr _modules`.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.path.join(ROOT, "target")

# Top-level names of the non-tcr modules an idle tcrd may hold, interpreter start-up included.
INTERPRETER = {
    "__main__", "_abc", "_codecs", "_frozen_importlib", "_frozen_importlib_external", "_imp", "_io",
    "_signal", "_thread", "_warnings", "_weakref", "abc", "builtins", "codecs", "encodings", "io",
    "marshal", "posix", "sys", "time", "zipimport", "_collections_abc", "genericpath", "os",
    "posixpath", "stat", "_stat",
}
# The floor: the C halves of what the issue names (selectors, socket, json). Their Python halves
# cost ~2 MB with what they import (enum, functools, collections, re): tcrd uses select.epoll,
# tcr.kernel.sockets on _socket and tcr.common.jsonc on _json instead (docs/profile.md).
FLOOR = {"select", "_socket", "_json", "errno"}
# What the daemon adds, each for a reason.
DAEMON = {
    "__future__",   # `from __future__ import annotations` (annotations stay strings: no typing)
    "_heapq",       # the loop's timer heap (not heapq.py)
    "_collections",  # deque (not collections.py)
    "_functools",   # partial (not functools.py)
    "struct", "_struct",  # rtnetlink, loop device ioctls, DNS packets, SO_PEERCRED
    "fcntl",        # loop ioctls, flocks, pipe sizes
    "mmap",         # the RPC server's receive buffer (resident only when used)
    "_ctypes",      # mount/umount2/setns/unshare/prctl (tcr.kernel.libc; not the ctypes package)
    "gc",           # tcr.daemon.worker (builtin)
    "resource",     # setrlimit when published ports need more fds (limits are read from /proc)
    "binascii", "_sha256", "_sha2",  # digests and base64 (builtin modules)
}
ALLOWED = INTERPRETER | FLOOR | DAEMON
# Named so that a regression reads clearly (each cost tcrd 0.3-1.6 MB resident).
FORBIDDEN = {"logging", "dataclasses", "inspect", "ast", "dis", "argparse", "gettext", "locale", "subprocess",
             "threading", "ujson", "decimal", "traceback", "linecache", "tokenize", "importlib",
             "pyroute2", "dnslib", "copy", "textwrap", "string", "hashlib", "_hashlib", "grp", "pwd",
             "ipaddress", "shutil", "tempfile", "random", "bz2", "lzma", "typing", "platform", "ctypes",
             "contextlib", "warnings", "PySquashfsImage", "zstandard",
             # the Python halves of the floor and what they import (~2 MB together)
             "socket", "selectors", "json", "re", "enum", "functools", "collections", "signal", "heapq",
             "array", "types", "operator", "keyword", "reprlib", "itertools", "copyreg"}

# The modules a daemon loads before and while serving common requests, without root.
DAEMON_MODULES = ("tcr.daemon.main", "tcr.daemon.app", "tcr.daemon.worker", "tcr.rpc.server",
                  "tcr.containers.manager", "tcr.containers.seccomp_cache", "tcr.network.manager",
                  "tcr.network.dns.server", "tcr.images.manager")


def check(names):
    """Problems with a set of module names (full dotted names; tcr's own are always allowed)."""
    top = {n.split(".")[0] for n in names if n != "tcr" and not n.startswith("tcr.")}
    problems = []
    bad = sorted(top & FORBIDDEN)
    if bad:
        problems.append(f"tcrd loads modules removed for their memory: {bad}")
    extra = sorted(top - ALLOWED - FORBIDDEN)
    if extra:
        problems.append(f"tcrd loads modules outside the allow-list: {extra} (docs/profile.md)")
    return problems


def loaded_by_daemon_imports():
    code = ("import sys\n"
            f"sys.path.insert(0, {TARGET!r})\n"
            f"for m in {DAEMON_MODULES!r}:\n"
            "    __import__(m)\n"
            "from tcr.commands import dispatch\n"
            "dispatch.load_commands()\n"
            "print('\\n'.join(sys.modules))\n")
    # -I -S: as the installed tcrd runs (no site, no .pth files)
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_daemon_imports_stay_within_the_allow_list():
    names = loaded_by_daemon_imports()
    assert "tcr.containers.manager" in names and "_socket" in names
    assert not check(names), check(names)


# tcr's own modules the daemon never needs resident (docs/profile.md): the image store's file work
# runs in its worker (which imports it after the fork); volumes load with the first volume, host
# devices with the first --device or --privileged, cgroup counters with `stats`/`top` (a container's
# exit reads its OOM count through tcr.kernel.cgroupmem); port-holding sockets and `resource`
# (setrlimit) with the first -p (limits are read from /proc/self/limits: tcr.kernel.rlimits). The
# run/create flag parser runs in a worker (tcr.commands.containers): tcrd keeps only the records
# (tcr.containers.runrecord).
NOT_IN_DAEMON = ("tcr.images.store", "tcr.images.reader", "tcr.kernel.fsverity", "tcr.formats.xxh64",
                 "tcr.containers.runopts",
                 "tcr.volumes.manager", "tcr.kernel.devices", "tcr.kernel.cgroupfs", "tcr.kernel.portsock",
                 "resource", "math",  # math: the RPC's finite-number check is one subtraction
                 "tcr.network.dns.tcp",  # DNS over TCP: at the first TCP client or truncated answer
                 "tcr.images.installer",  # a load's install step: imported in its worker only
                 "tcr.images.occasional",  # image tag, image verify, sealing a --move load
                 "tcr.network.published",  # -p: with the first container that publishes a port
                 "tcr.network.occasional",  # network create/inspect/connect/disconnect, rename
                 "tcr.containers.supervisor",  # restart policies: with the first container that has one
                 "tcr.containers.occasional",  # exec -d, the compat dialect's interactive run
                 "tcr.containers.syslogsink",  # --log-driver syslog
                 "tcr.containers.volumeuse",  # volumes and host devices: with the first container using one
                 # command handlers a tcrd that loaded an image and ran containers was not asked for
                 # (tcr.commands.dispatch.LAZY_COMMANDS; `image` verbs: tcr.commands.images.HANDLERS)
                 "tcr.commands.showing", "tcr.commands.lifecycle", "tcr.commands.imageops",
                 # start-up only: recovery runs once in Daemon.start(), then tcr.daemon.main drops it
                 "tcr.images.recovery", "tcr.network.recovery", "tcr.containers.recovery",
                 "tcr.kernel.loopdev", "tcr.rpc.listen", "tcr.daemon.options")


def test_worker_only_modules_are_not_imported_by_the_daemon():
    names = set(loaded_by_daemon_imports())
    assert "tcr.images.storedfile" in names
    assert not names & set(NOT_IN_DAEMON), sorted(names & set(NOT_IN_DAEMON))


def test_the_check_catches_a_regression():
    assert check(["os", "tcr.x", "logging", "logging.handlers"]) == [
        "tcrd loads modules removed for their memory: ['logging']"]
    assert check(["os", "xml.dom"])[0].startswith("tcrd loads modules outside the allow-list: ['xml']")
    assert not ALLOWED & FORBIDDEN


# Modules no daemon-side code in target/tcr may import at run time, wherever it is (lazily too):
# records and logging have their own small versions, and a lazy import would come back on some
# request path. Client-side packages (the `tcr` CLI, `tcr compose`) are not the daemon's.
CLIENT_SIDE = (os.path.join("tcr", "cli", ""), os.path.join("tcr", "compose", ""))
NEVER = {"logging": "tcr.common.log", "dataclasses": "tcr.common.record", "argparse": "tcr.commands.argv",
         "ipaddress": "tcr.network.ipaddr", "ujson": "tcr.common.jsonc (json first)"}


def test_no_module_imports_what_has_a_small_replacement():
    from test.unit.test_import_boundary import imports_of, target_files

    found = []
    for path in target_files():
        if any(part in path for part in CLIENT_SIDE):
            continue
        for mod, line in imports_of(path):
            top = mod.split(".")[0]
            if top in NEVER and not path.endswith(os.path.join("common", "jsonc.py")):
                found.append(f"{os.path.relpath(path, ROOT)}:{line} imports {mod} (use {NEVER[top]})")
    assert not found, "\n".join(found)
