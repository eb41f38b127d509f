"""`tcr compose`: the client-side command (imported only for `compose`; the plain client stays lean).

    tcr compose [-f FILE] [-p NAME] [--dry-run] up [-d] [--remove-orphans] [--force-recreate] [SERVICE...]
                                                down [-v] [--remove-orphans]
                                                ps [-a] [-q] [--format F]
                                                logs [-f] [-t] [--tail N] [SERVICE...]
                                                config [--services] [--hash] [--format json|yaml]
"""

import argparse
import os
import sys
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tcr.common.errors import UsageError
from tcr.compose import apply, plan, spec
from tcr.compose.spec import ComposeError

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml", "compose.json")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"compose: {message}", hint="see tcr compose --help")

    def exit(self, status: int = 0, message: Optional[str] = None) -> Any:  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tcr compose", description="Declarative stacks from a compose file (docs/cli.md).")
    p.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                   help="compose file (default: compose.yaml ... in the current directory)")
    p.add_argument("-p", "--project-name", metavar="NAME", help="project name (default: the directory)")
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    p.add_argument("--format", default="", metavar="FORMAT", help="json: machine-readable output")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True
    u = sub.add_parser("up", help="create or update the stack (only what changed)")
    u.add_argument("-d", "--detach", action="store_true", help="leave the stack running in the background")
    u.add_argument("--remove-orphans", action="store_true", help="remove other services' containers")
    u.add_argument("--force-recreate", action="store_true", help="recreate every container")
    u.add_argument("--dry-run", action="store_true", dest="dry_run_sub")
    u.add_argument("--format", default="", dest="format_sub")
    u.add_argument("services", nargs="*", metavar="SERVICE")
    d = sub.add_parser("down", help="remove the stack's containers and networks (-v: volumes too)")
    d.add_argument("-v", "--volumes", action="store_true", help="remove the project's named volumes")
    d.add_argument("--remove-orphans", action="store_true")
    d.add_argument("--dry-run", action="store_true", dest="dry_run_sub")
    d.add_argument("--format", default="", dest="format_sub")
    s = sub.add_parser("ps", help="list the stack's containers")
    s.add_argument("-a", "--all", action="store_true", help="also stopped containers")
    s.add_argument("-q", "--quiet", action="store_true", help="only ids")
    s.add_argument("--format", default="", dest="format_sub")
    s.add_argument("services", nargs="*", metavar="SERVICE")
    lg = sub.add_parser("logs", help="the services' logs, prefixed by container name")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-t", "--timestamps", action="store_true")
    lg.add_argument("--tail", metavar="N")
    lg.add_argument("--no-log-prefix", action="store_true")
    lg.add_argument("services", nargs="*", metavar="SERVICE")
    c = sub.add_parser("config", help="the validated, normalized file")
    c.add_argument("--services", action="store_true", help="only the service names, in start order")
    c.add_argument("--hash", metavar="SERVICE|*", help="the config hash of services")
    c.add_argument("-q", "--quiet", action="store_true", help="only validate")
    c.add_argument("--format", default="", dest="format_sub")
    return p


def find_file(files: Sequence[str]) -> Optional[str]:
    if files:
        if len(files) > 1:
            raise UsageError("compose: one -f FILE only (tcr does not merge compose files)")
        return files[0]
    for name in DEFAULT_FILES:
        if os.path.isfile(name):
            return name
    return None


def _out(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(socket: Optional[str], argv: Sequence[str]) -> int:
    ns = build_parser().parse_args(list(argv))
    dry = ns.dry_run or bool(getattr(ns, "dry_run_sub", False))
    fmt = getattr(ns, "format_sub", "") or ns.format
    path = find_file(ns.file)
    project: Optional[Dict[str, Any]] = None
    if path is not None:
        project = spec.load(path, ns.project_name)
    elif ns.cmd in ("up", "config") or not ns.project_name:
        raise ComposeError("no compose file found (compose.yaml, docker-compose.yml ... )",
                           hint="give one with -f FILE, or -p NAME for ps/logs/down of a deployed project")
    name = project["name"] if project else spec.project_name_from(ns.project_name)
    if ns.cmd == "config":
        assert project is not None
        return cmd_config(project, ns, fmt)
    cli = apply.Client(socket)
    if ns.cmd == "up":
        assert project is not None and path is not None
        return cmd_up(cli, project, os.path.abspath(path), ns, dry, fmt)
    if ns.cmd == "down":
        return cmd_down(cli, name, project, ns, dry, fmt)
    if ns.cmd == "ps":
        return cmd_ps(cli, name, ns, fmt)
    return cmd_logs(cli, name, ns)


def _report(project: str, steps: List[Dict[str, Any]], dry: bool, fmt: str) -> None:
    if fmt == "json":
        from tcr.common import jsonc

        _out(jsonc.dumps({"project": project, "dry_run": dry, "changed": plan.changed(steps),
                          "steps": steps}) + "\n")
    elif dry:
        _out(plan.render(steps))


def cmd_up(cli: apply.Client, project: Dict[str, Any], path: str, ns: argparse.Namespace, dry: bool,
           fmt: str) -> int:
    steps = apply.plan_up(cli, project, remove_orphans=ns.remove_orphans, services=ns.services or None,
                          force_recreate=ns.force_recreate)
    if not dry:
        say = (lambda _m: None) if fmt == "json" else _err
        apply.up(cli, project, steps, path, say)
    _report(project["name"], steps, dry, fmt)
    if dry or ns.detach or fmt == "json":
        return 0
    # Attached (docker compose up without -d): follow the logs; ^C stops the stack.
    names = [plan.container_name(project["name"], s) for s in spec.order(project["services"])
             if not ns.services or s in ns.services]
    try:
        follow(cli, names, timestamps=False, tail=None, prefix=True)
    except KeyboardInterrupt:
        _err("Gracefully stopping... (press Ctrl+C again to force)")
        for n in reversed(names):
            cli.call("stop", [n], check=False)
    return 0


def cmd_down(cli: apply.Client, name: str, project: Optional[Dict[str, Any]], ns: argparse.Namespace,
             dry: bool, fmt: str) -> int:
    vols = apply.observe_volumes(cli) if ns.volumes else []
    steps = plan.plan_down(name, apply.observe_containers(cli, name), apply.observe_networks(cli), vols,
                           remove_volumes=ns.volumes, project=project, remove_orphans=ns.remove_orphans)
    if not dry:
        apply.down(cli, steps, (lambda _m: None) if fmt == "json" else _err)
    _report(name, steps, dry, fmt)
    return 0


def cmd_ps(cli: apply.Client, name: str, ns: argparse.Namespace, fmt: str) -> int:
    args = [f"--filter=label={plan.L_PROJECT}={name}"]
    if ns.all:
        args.append("-a")
    if ns.quiet:
        args.append("-q")
    if fmt:
        args.append(f"--format={fmt}")
    if ns.services:  # by id: repeated filters of one key are alternatives, different keys all apply
        ctrs = [c for c in apply.observe_containers(cli, name) if c["service"] in ns.services]
        unknown = set(ns.services) - {c["service"] for c in ctrs}
        if unknown:
            raise ComposeError(f"no such service: {sorted(unknown)[0]}")
        args += [f"--filter=id={c['id']}" for c in ctrs]
    _out(cli.call("ps", args)["stdout"])
    return 0


def cmd_config(project: Mapping[str, Any], ns: argparse.Namespace, fmt: str) -> int:
    if ns.quiet:
        return 0
    if ns.services:
        _out("".join(s + "\n" for s in spec.order(project["services"])))
        return 0
    if ns.hash:
        names = sorted(project["services"]) if ns.hash == "*" else ns.hash.split(",")
        for n in names:
            if n not in project["services"]:
                raise ComposeError(f"no such service: {n}")
            _out(f"{n} {plan.config_hash(plan.service_args(project, n))}\n")
        return 0
    doc = {"name": project["name"], "services": project["services"], "networks": project["networks"],
           "volumes": project["volumes"]}
    if fmt != "json":
        try:
            yaml = spec._import_yaml()
        except ImportError:
            yaml = None
        if yaml is not None:
            _out(yaml.safe_dump(doc, sort_keys=True, default_flow_style=False))
            return 0
    import json

    _out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return 0


def _targets(cli: apply.Client, name: str, services: Sequence[str]) -> List[str]:
    ctrs = apply.observe_containers(cli, name)
    if services:
        known = {c["service"] for c in ctrs}
        for s in services:
            if s not in known:
                raise ComposeError(f"no such service: {s}")
        ctrs = [c for c in ctrs if c["service"] in services]
    return sorted(c["name"] for c in ctrs)


def cmd_logs(cli: apply.Client, name: str, ns: argparse.Namespace) -> int:
    names = _targets(cli, name, ns.services)
    if ns.follow:
        follow(cli, names, ns.timestamps, ns.tail, not ns.no_log_prefix)
        return 0
    for n in names:
        args = _log_args(n, ns.timestamps, ns.tail, False)
        pw = _Prefixer(n if not ns.no_log_prefix else "", max(map(len, names)), threading.Lock())
        r = cli.call("logs", args, check=False)
        pw.write(r["stdout"], r["stderr"])
        pw.flush()
    return 0


def _log_args(name: str, timestamps: bool, tail: Optional[str], follow: bool) -> List[str]:
    a = []
    if follow:
        a.append("--follow")
    if timestamps:
        a.append("--timestamps")
    if tail is not None:
        a.append(f"--tail={tail}")
    return a + [name]


class _Prefixer:
    """Whole lines, each prefixed `name  | ` as docker compose does; stdout and stderr kept apart."""

    def __init__(self, name: str, width: int, lock: threading.Lock):
        self.prefix = f"{name:<{width}}  | " if name else ""
        self.lock = lock
        self.buf = {1: "", 2: ""}

    def write(self, out: str, err: str) -> None:
        for fd, text in ((1, out), (2, err)):
            if not text:
                continue
            data = self.buf[fd] + text
            lines = data.split("\n")
            self.buf[fd] = lines.pop()
            if lines:
                self._emit(fd, lines)

    def _emit(self, fd: int, lines: List[str]) -> None:
        stream = sys.stdout if fd == 1 else sys.stderr
        with self.lock:
            stream.write("".join(self.prefix + x + "\n" for x in lines))
            stream.flush()

    def flush(self) -> None:
        for fd in (1, 2):
            if self.buf[fd]:
                self._emit(fd, [self.buf[fd]])
                self.buf[fd] = ""


def follow(cli: apply.Client, names: Sequence[str], timestamps: bool, tail: Optional[str],
           prefix: bool) -> None:
    """`logs -f` of several containers at once: one connection and thread each, lines interleaved."""
    if not names:
        return
    lock = threading.Lock()
    width = max(map(len, names))

    def one(n: str) -> None:
        pw = _Prefixer(n if prefix else "", width, lock)
        try:
            r = cli.call("logs", _log_args(n, timestamps, tail, True), on_stream=pw.write, check=False)
            pw.write(r["stdout"], r["stderr"])
        except Exception as exc:  # one container going away must not stop the others
            _err(f"tcr: {n}: {exc}")
        pw.flush()

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # a timed join keeps ^C deliverable to the main thread
