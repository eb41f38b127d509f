"""A real tcrd, started as installed (`python3 -I -S`): after image load and runs on the default
network it holds no command handler it was not asked for; after exec, logs, ps, stop and rm too,
the modules it holds stay within test/unit/test_idle_imports.py's allow-list (request paths import
lazily, so only a real daemon shows them)."""

import os
import shutil
import site
import sys
import tempfile

import pytest

from test.fixtures.daemon import Tcrd, leak_report
from test.root.test_containers_image import build
from test.unit.test_idle_imports import NOT_IN_DAEMON, TARGET, check

pytestmark = pytest.mark.root


class InstalledTcrd(Tcrd):
    """tcrd as `make install` runs it: -I -S, the package's site directory on sys.path."""

    def argv(self):
        argv = super().argv()
        i = argv.index("tcr.daemon.main")
        path = [TARGET, *site.getsitepackages()]
        boot = f"import sys; sys.path[:0] = {path!r}; from tcr.daemon.main import main; sys.exit(main())"
        return [sys.executable, "-I", "-S", "-c", boot, *argv[i + 1:]]


@pytest.fixture
def installed_tcrd():
    if os.geteuid() != 0:
        pytest.skip("tcrd needs root")
    base = tempfile.mkdtemp(prefix=f"tcrd-imp-{os.getpid()}-", dir="/tmp")
    d = InstalledTcrd(base)
    d.start()
    try:
        yield d
    finally:
        problems = []
        if d.running():
            problems += d.remove_all_containers_and_networks()
            problems += d.remove_all_images()
            d.stop()
        problems += leak_report(base)
        d.kill9()
        d.force_clean_net()
        d.force_clean()
        shutil.rmtree(base, ignore_errors=True)
        assert not problems, problems


def cli(d, *args):
    r = d.cli(*args)
    assert r.returncode == 0, (args, r.stderr, d.log()[-2000:])
    return r.stdout


def test_daemon_after_common_requests_holds_only_allowed_modules(installed_tcrd, tmp_path):
    d = installed_tcrd
    cli(d, "image", "load", build(str(tmp_path)))
    cli(d, "run", "--rm", "--network", "none", "busybox", "/bin/true")
    cli(d, "run", "--rm", "busybox", "/bin/true")  # default network: bridge, nft, DNS forwarder
    # the bench's workload (bench_memory: load, two runs): no other command's handlers are held
    from tcr.commands import base
    from tcr.commands.dispatch import LAZY_COMMANDS, load_commands

    load_commands(lazy=False)
    unasked = ("ps", "inspect", "logs", "stop", "rm", "exec", "start", "create", "container", "images")
    lazy = {m for m, _s in LAZY_COMMANDS.values()} | {base.COMMANDS[c].__module__ for c in unasked}
    held = sorted((lazy - {"tcr.commands.system"}) & set(cli(d, "_modules").split()))
    assert not held, f"a tcrd that loaded an image and ran containers holds {held}"
    cli(d, "run", "-d", "--name", "imp", "busybox", "sh", "-c", "echo hi; sleep 600")
    cli(d, "exec", "imp", "/bin/true")
    cli(d, "logs", "imp")
    cli(d, "ps", "-a")
    cli(d, "images")
    cli(d, "inspect", "imp")
    cli(d, "stop", "-t", "1", "imp")
    cli(d, "rm", "imp")
    names = cli(d, "_modules").split()
    assert "tcr.containers.manager" in names and "tcr.network.dns.server" in names
    assert not check(names), check(names)
    # start-up only, and the rarely used command modules (tcr.commands.dispatch.LAZY_COMMANDS);
    # tcr.commands.system is loaded by the `_modules` request that lists them, the others by the
    # commands above
    asked = {"tcr.commands.system", *(base.COMMANDS[c].__module__ for c in unasked)}
    held_rare = sorted((({"tcr.check"} | lazy) - asked) & set(names))
    assert not held_rare, f"an idle tcrd holds {held_rare}"
    # the image load ran tcr.images.store in its worker; no container used a volume
    held_worker = sorted((set(NOT_IN_DAEMON) - asked) & set(names))
    assert not held_worker, f"an idle tcrd holds {held_worker}"


def test_recovery_code_is_dropped_after_start_up(installed_tcrd, tmp_path):
    """A tcrd that recovers live containers (re-adopted: exit watch, log pump, health monitor,
    published ports) drops its recovery modules once it listens, and nothing keeps their
    functions alive (a callback made there would keep the whole module's code resident)."""
    from tcr.daemon.main import STARTUP_ONLY

    d = installed_tcrd
    cli(d, "image", "load", build(str(tmp_path)))
    cli(d, "run", "-d", "--name", "rec1", "--restart", "always", "--health-cmd", "true",
        "-p", "127.0.0.1::80", "busybox", "sleep", "600")
    cli(d, "run", "-d", "--name", "rec2", "--network", "none", "busybox", "sleep", "600")
    d.kill9()
    d.start()
    assert "running" in cli(d, "inspect", "-f", "{{.State.Status}}", "rec1")
    names = cli(d, "_modules").split()
    assert set(STARTUP_ONLY) <= set(NOT_IN_DAEMON)
    assert not set(STARTUP_ONLY) & set(names), sorted(set(STARTUP_ONLY) & set(names))
    assert cli(d, "_modules", "--dropped") == ""
    cli(d, "rm", "-f", "rec1", "rec2")
