"""Carry out a compose plan through the same RPC calls the `tcr` CLI makes.

Nothing here decides *what* to do (that is plan.py, pure); this reads what exists (ps, network ls,
volume ls, image inspect, all `--format json`) and performs steps one RPC at a time, in plan order.
"""

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from tcr.compose import plan
from tcr.compose.spec import ComposeError


class Client:
    """One short connection per request to tcrd (as the CLI): a failed call raises."""

    def __init__(self, socket: Optional[str] = None):
        from tcr.rpc import client

        self._rpc = client
        self.path = client.resolve_socket(socket)

    def call(self, method: str, args: Sequence[str], on_stream: Optional[Callable[[str, str], None]] = None,
             check: bool = True) -> Dict[str, Any]:
        sock = self._rpc.connect(self.path)
        try:
            reply = self._rpc.call(sock, method, list(args), on_stream=on_stream, where=self.path)
        except self._rpc.RpcError as exc:
            raise ComposeError(f"{method} {' '.join(args[:1])}: {exc.message}", exc.hint, code=exc.code)
        finally:
            sock.close()
        if reply["kind"] != "result":
            raise ComposeError(f"{method}: unexpected reply from tcrd")
        if check and reply["exit_code"] != 0:
            msg = (reply["stderr"] or reply["stdout"]).strip().splitlines()
            raise ComposeError(f"{method} failed: {msg[-1] if msg else 'exit ' + str(reply['exit_code'])}")
        return reply

    def json(self, method: str, args: Sequence[str]) -> Any:
        from tcr.common import jsonc

        out = self.call(method, args)["stdout"]
        try:
            return jsonc.loads(out or "null")
        except ValueError:
            raise ComposeError(f"{method}: tcrd sent malformed JSON")


def parse_labels(text: Any) -> Dict[str, str]:
    """ps's Labels ("k=v,k=v") or a labels mapping; only compose's own keys are trusted from text."""
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    out: Dict[str, str] = {}
    for part in str(text or "").split(","):
        k, eq, v = part.partition("=")
        if eq and k.startswith("com.docker.compose."):
            out[k] = v
    return out


def observe_containers(cli: Client, project: str) -> List[Dict[str, Any]]:
    rows = cli.json("ps", ["-a", f"--filter=label={plan.L_PROJECT}={project}", "--format=json"]) or []
    out = []
    for r in rows:
        labs = parse_labels(r.get("Labels"))
        if labs.get(plan.L_PROJECT) != project:
            continue
        out.append({"name": r.get("Names", ""), "id": r.get("Id", ""),
                    "service": labs.get(plan.L_SERVICE, ""),
                    "hash": labs.get(plan.L_HASH, ""), "state": r.get("State", ""),
                    "image_id": r.get("ImageId", ""), "status": r.get("Status", "")})
    return out


def observe_networks(cli: Client) -> List[Dict[str, Any]]:
    rows = cli.json("network", ["ls", "--format=json"]) or []
    return [{"name": r.get("name") or r.get("Name"), "labels": r.get("labels") or r.get("Labels") or {}}
            for r in rows]


def observe_volumes(cli: Client) -> List[Dict[str, Any]]:
    rows = cli.json("volume", ["ls", "--format=json"]) or []
    return [{"name": r.get("Name") or r.get("name"), "labels": r.get("Labels") or r.get("labels") or {}}
            for r in rows]


def image_ids(cli: Client, refs: Sequence[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for ref in sorted(set(refs)):
        try:
            items = cli.json("image", ["inspect", "--format=json", ref])
        except ComposeError:
            continue  # not loaded: `run` reports it with its own hint
        if isinstance(items, list) and items and isinstance(items[0], dict):
            out[ref] = str(items[0].get("id") or items[0].get("Id") or "")
    return out


def plan_up(cli: Client, project: Mapping[str, Any], **kw: Any) -> List[Dict[str, Any]]:
    needs_volumes = bool(project["volumes"])
    return plan.plan_up(
        project,
        observe_containers(cli, project["name"]),
        [n["name"] for n in observe_networks(cli)],
        [v["name"] for v in observe_volumes(cli)] if needs_volumes else [],
        image_ids(cli, [s["image"] for s in project["services"].values()]),
        **kw,
    )


def wait_healthy(cli: Client, name: str, timeout: float, say: Callable[[str], None]) -> None:
    """Wait for a dependency's health check to pass (client side: the daemon never waits)."""
    deadline = time.monotonic() + timeout
    say(f"Container {name}  Waiting")
    while True:
        items = cli.json("inspect", ["--format=json", name])
        state = items[0].get("State", {}) if items else {}
        health = (state.get("Health") or {}).get("Status", "")
        if health == "healthy":
            say(f"Container {name}  Healthy")
            return
        if health == "unhealthy":
            raise ComposeError(f"dependency failed to start: container {name} is unhealthy")
        if state.get("Status") in ("exited", "created") and not state.get("Restarting"):
            raise ComposeError(f"dependency failed to start: container {name} exited")
        if time.monotonic() > deadline:
            raise ComposeError(f"dependency failed to start: container {name} not healthy in {timeout:.0f}s")
        time.sleep(0.5)


def health_timeout(svc: Mapping[str, Any]) -> float:
    hc = svc.get("healthcheck") or {}
    interval = hc.get("interval", 30.0)
    return hc.get("start_period", 0.0) + (interval + hc.get("timeout", 30.0)) * (hc.get("retries", 3) + 1)


def up(cli: Client, project: Mapping[str, Any], steps: Sequence[Mapping[str, Any]], config_file: str,
       say: Callable[[str], None]) -> None:
    """Perform the steps of plan_up in order (networks, volumes, orphans, services)."""
    missing = [s for s in steps if s["action"] == "missing"]
    if missing:
        s = missing[0]
        raise ComposeError(f"external {s['kind']} {s['target']} does not exist",
                           hint=f"create it first: tcr {s['kind']} create {s['target']}")
    name = project["name"]
    for s in steps:
        if s["kind"] == "network" and s["action"] == "create":
            n = project["networks"][s["name"]]
            args = ["create", f"--label={plan.L_PROJECT}={name}", f"--label={plan.L_NETWORK}={s['name']}"]
            args += [f"--label={k}={v}" for k, v in sorted(n["labels"].items())]
            if n.get("subnet"):
                args.append(f"--subnet={n['subnet']}")
            cli.call("network", args + [n["name"]])
            say(f"Network {n['name']}  Created")
        elif s["kind"] == "volume" and s["action"] == "create":
            v = project["volumes"][s["name"]]
            args = ["create", f"--label={plan.L_PROJECT}={name}", f"--label={plan.L_VOLUME}={s['name']}"]
            args += [f"--label={k}={x}" for k, x in sorted(v["labels"].items())]
            cli.call("volume", args + [v["name"]])
            say(f"Volume {v['name']}  Created")
    for s in steps:
        if s["kind"] == "service" and s["action"] == "remove":
            remove(cli, s["target"])
            say(f"Container {s['target']}  Removed")
        elif s["kind"] == "service" and s["action"] == "orphan":
            say(f"Container {s['target']}  Orphan (use --remove-orphans to remove it)")
    waited = set()
    for s in steps:
        if s["kind"] != "service" or s["action"] not in ("create", "recreate", "start", "keep"):
            continue
        svc = project["services"][s["name"]]
        for dep, cond in sorted(svc.get("depends_on", {}).items()):
            if cond == "service_healthy" and dep not in waited:
                limit = health_timeout(project["services"][dep])
                wait_healthy(cli, plan.container_name(name, dep), limit, say)
                waited.add(dep)
        if s["action"] == "recreate":
            remove(cli, s["target"])
        if s["action"] in ("create", "recreate"):
            cli.call("run", plan.run_args(project, s["name"], config_file))
            say(f"Container {s['target']}  {'Recreated' if s['action'] == 'recreate' else 'Created'}")
        elif s["action"] == "start":
            cli.call("start", [s["target"]])
            say(f"Container {s['target']}  Started")
        else:
            say(f"Container {s['target']}  Running")


def remove(cli: Client, target: str) -> None:
    """Stop gracefully (the container's stop signal and timeout), then remove, as docker compose."""
    cli.call("stop", [target], check=False)
    cli.call("rm", ["-f", target])


def down(cli: Client, steps: Sequence[Mapping[str, Any]], say: Callable[[str], None]) -> None:
    for s in steps:
        if s["action"] != "remove":
            if s["action"] == "orphan":
                say(f"Container {s['target']}  Orphan (use --remove-orphans to remove it)")
            continue
        if s["kind"] == "service":
            remove(cli, s["target"])
            say(f"Container {s['target']}  Removed")
        elif s["kind"] == "network":
            cli.call("network", ["rm", s["target"]])
            say(f"Network {s['target']}  Removed")
        else:
            cli.call("volume", ["rm", s["target"]])
            say(f"Volume {s['target']}  Removed")
