#!/usr/bin/python
# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tcr_container
short_description: Manage one tcr container on a board
description:
  - The container is created with C(tcr run -d) (or C(tcr create)) and carries a label with the hash
    of its run arguments; a later run with other arguments, or with an image tag that now names
    another image, recreates it; the same arguments change nothing.
options:
  name: {type: str, required: true, description: Container name.}
  image: {type: str, description: "Image (name:tag or id); needed unless state is absent or stopped."}
  command: {type: raw, description: "Command (a list, or a string split like a shell)."}
  entrypoint: {type: str, description: Override the image's entrypoint.}
  env: {type: dict, description: Environment variables.}
  ports: {type: list, elements: str, description: "Published ports, [IP:]HOST:CTR[/PROTO]."}
  volumes: {type: list, elements: str, description: "Named volumes and binds, SRC:DST[:ro]."}
  devices: {type: list, elements: str, description: "Host devices, HOST[:CTR[:rwm]]."}
  network: {type: str, description: Network (default tcr_default).}
  restart: {type: str, description: "no, always, unless-stopped, on-failure[:N]."}
  labels: {type: dict, description: Labels.}
  user: {type: str}
  workdir: {type: str}
  read_only: {type: bool, default: false}
  memory: {type: str}
  cpus: {type: str}
  pids_limit: {type: int}
  cap_add: {type: list, elements: str}
  cap_drop: {type: list, elements: str}
  health_cmd: {type: str}
  health_interval: {type: str}
  health_retries: {type: int}
  extra_args: {type: list, elements: str, description: "Other tcr run flags, passed as given."}
  state:
    type: str
    choices: [started, present, stopped, absent]
    default: started
  recreate: {type: bool, default: false, description: Recreate even when nothing changed.}
  tcr_path: {type: str, default: tcr}
  socket: {type: str}
"""

EXAMPLES = r"""
- tcr.tcr.tcr_container:
    name: sensor
    image: sensor:2.1
    devices: [/dev/ttyUSB0]
    restart: always
"""

RETURN = r"""
container:
  description: "The container as `tcr inspect` shows it (empty when absent)."
  type: dict
  returned: always
"""

import hashlib
import json
import shlex

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tcr.tcr.plugins.module_utils.tcr import COMMON_ARGS, Tcr, labels_args

HASH_LABEL = "org.tcr.ansible.config-hash"


def run_args(p):
    a = ["--name=%s" % p["name"]]
    for k, v in sorted((p["env"] or {}).items()):
        a.append("--env=%s=%s" % (k, v))
    for key, flag in (("ports", "--publish"), ("volumes", "--volume"), ("devices", "--device"),
                      ("cap_add", "--cap-add"), ("cap_drop", "--cap-drop")):
        for x in p[key] or []:
            a.append("%s=%s" % (flag, x))
    for key, flag in (("network", "--network"), ("restart", "--restart"), ("user", "--user"),
                      ("workdir", "--workdir"), ("memory", "--memory"), ("cpus", "--cpus"),
                      ("pids_limit", "--pids-limit"), ("entrypoint", "--entrypoint"),
                      ("health_cmd", "--health-cmd"), ("health_interval", "--health-interval"),
                      ("health_retries", "--health-retries")):
        if p[key] is not None:
            a.append("%s=%s" % (flag, p[key]))
    if p["read_only"]:
        a.append("--read-only")
    a += labels_args(p["labels"])
    a += list(p["extra_args"] or [])
    cmd = p["command"]
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    a.append(p["image"])
    a += [str(x) for x in (cmd or [])]
    return a


def main():
    args = dict(
        name=dict(type="str", required=True), image=dict(type="str"), command=dict(type="raw"),
        entrypoint=dict(type="str"), env=dict(type="dict"), ports=dict(type="list", elements="str"),
        volumes=dict(type="list", elements="str"), devices=dict(type="list", elements="str"),
        network=dict(type="str"), restart=dict(type="str"), labels=dict(type="dict"), user=dict(type="str"),
        workdir=dict(type="str"), read_only=dict(type="bool", default=False), memory=dict(type="str"),
        cpus=dict(type="str"), pids_limit=dict(type="int"), cap_add=dict(type="list", elements="str"),
        cap_drop=dict(type="list", elements="str"), health_cmd=dict(type="str"), health_interval=dict(type="str"),
        health_retries=dict(type="int"), extra_args=dict(type="list", elements="str"),
        state=dict(type="str", choices=["started", "present", "stopped", "absent"], default="started"),
        recreate=dict(type="bool", default=False),
    )
    args.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=args, supports_check_mode=True)
    p = module.params
    tcr = Tcr(module)
    cur = tcr.inspect("container", p["name"])
    state = p["state"]
    if state == "absent":
        if cur is None:
            module.exit_json(changed=False, container={})
        if not module.check_mode:
            tcr.run(["rm", "-f", p["name"]])
        module.exit_json(changed=True, container={}, diff={"before": "container %s\n" % p["name"], "after": ""})
    if not p["image"]:
        if cur is None or state != "stopped":
            module.fail_json(msg="image is required to create container %s" % p["name"])
    changed = False
    diff = {"before": "", "after": ""}
    if p["image"]:
        a = run_args(p)
        want = hashlib.sha256(json.dumps(a).encode("utf-8")).hexdigest()
        have = ((cur or {}).get("Config") or {}).get("Labels", {}).get(HASH_LABEL) if cur else None
        image = tcr.inspect("image", p["image"])
        stale_image = bool(cur and image and image.get("id") and cur.get("Image") not in (image.get("id"), None))
        if cur is None or have != want or stale_image or p["recreate"]:
            changed = True
            diff = {"before": "" if cur is None else "args-hash %s\nimage %s\n" % (have, cur.get("Image")),
                    "after": "args-hash %s\nimage %s\n" % (want, (image or {}).get("id", p["image"]))}
            if not module.check_mode:
                if cur is not None:
                    tcr.run(["stop", p["name"]], check=False)
                    tcr.run(["rm", "-f", p["name"]])
                i = a.index(p["image"])
                a = a[:i] + ["--label=%s=%s" % (HASH_LABEL, want)] + a[i:]
                if state == "started":
                    tcr.run(["run", "-d"] + a)
                else:
                    tcr.run(["create"] + a)
                cur = tcr.inspect("container", p["name"])
            module.exit_json(changed=True, container=cur or {}, diff=diff)
    status = ((cur or {}).get("State") or {}).get("Status")
    if state == "started" and status not in ("running", "restarting"):
        changed = True
        diff = {"before": "state %s\n" % status, "after": "state running\n"}
        if not module.check_mode:
            tcr.run(["start", p["name"]])
    elif state == "stopped" and status in ("running", "restarting", "paused"):
        changed = True
        diff = {"before": "state %s\n" % status, "after": "state exited\n"}
        if not module.check_mode:
            tcr.run(["stop", p["name"]])
    if changed and not module.check_mode:
        cur = tcr.inspect("container", p["name"])
    module.exit_json(changed=changed, container=cur or {}, diff=diff)


if __name__ == "__main__":
    main()
