#!/usr/bin/python
# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tcr_compose
short_description: Deploy a compose stack on a board with tcr compose
description:
  - Runs C(tcr compose up -d) (state present) or C(tcr compose down) (state absent) on the board.
  - "C(up) is idempotent and minimal: only services whose configuration or image changed are
    recreated; the module reports C(changed) from tcr's own plan, and in check mode asks tcr for the
    plan (C(--dry-run)) without changing anything."
options:
  project_name:
    description: The compose project (container names are PROJECT-SERVICE-1).
    type: str
    required: true
  definition:
    description: The compose file's content (written to the board as JSON; no PyYAML needed there).
    type: dict
  files:
    description: A compose file already on the board (instead of I(definition)).
    type: list
    elements: str
  project_src:
    description: Directory relative paths in the file resolve against (default the file's directory).
    type: path
  state:
    type: str
    choices: [present, absent]
    default: present
  remove_orphans:
    description: Remove containers of services that are no longer in the file.
    type: bool
    default: true
  remove_volumes:
    description: With state absent, also remove the project's named volumes.
    type: bool
    default: false
  recreate:
    description: C(auto) recreates what changed; C(always) every container.
    type: str
    choices: [auto, always]
    default: auto
  services:
    description: Only these services (and their dependencies).
    type: list
    elements: str
  tcr_path:
    type: str
    default: tcr
  socket:
    description: tcrd socket (the client's --socket).
    type: str
"""

EXAMPLES = r"""
- name: Deploy the app stack
  tcr.tcr.tcr_compose:
    project_name: shop
    definition:
      services:
        web:
          image: "registry.local/web:{{ web_tag }}"
          ports: ["8080:80"]
          restart: always
"""

RETURN = r"""
steps:
  description: "tcr's plan, one entry per network, volume and service (action create, recreate, start, keep, remove)."
  type: list
  returned: always
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tcr.tcr.plugins.module_utils.tcr import COMMON_ARGS, Tcr


def main():
    args = dict(
        project_name=dict(type="str", required=True),
        definition=dict(type="dict"),
        files=dict(type="list", elements="str"),
        project_src=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        remove_orphans=dict(type="bool", default=True),
        remove_volumes=dict(type="bool", default=False),
        recreate=dict(type="str", choices=["auto", "always"], default="auto"),
        services=dict(type="list", elements="str"),
    )
    args.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=args, supports_check_mode=True,
                           mutually_exclusive=[["definition", "files"]])
    p = module.params
    tcr = Tcr(module)
    tmpfile = None
    try:
        base = ["compose", "-p", p["project_name"]]
        if p["definition"] is not None:
            # beside project_src, so relative bind mounts resolve there (docker compose's rule)
            fd, tmpfile = tempfile.mkstemp(prefix=".tcr-compose-", suffix=".json", dir=p["project_src"] or None)
            with os.fdopen(fd, "w") as f:
                json.dump(p["definition"], f)
            base += ["-f", tmpfile]
        elif p["files"]:
            if len(p["files"]) != 1:
                module.fail_json(msg="tcr compose reads one file: give one entry in files")
            base += ["-f", p["files"][0]]
        elif p["state"] == "present":
            module.fail_json(msg="state present needs definition or files")
        if module.check_mode:
            base.append("--dry-run")
        if p["state"] == "present":
            cmd = base + ["up", "-d", "--format", "json"]
            if p["remove_orphans"]:
                cmd.append("--remove-orphans")
            if p["recreate"] == "always":
                cmd.append("--force-recreate")
            cmd += p["services"] or []
        else:
            cmd = base + ["down", "--format", "json", "--remove-orphans"]
            if p["remove_volumes"]:
                cmd.append("-v")
        cwd = p["project_src"] or None
        rc, out, err = tcr.run(cmd, cwd=cwd)
        try:
            report = json.loads(out)
        except ValueError:
            module.fail_json(msg="tcr compose: output is not JSON", stdout=out, stderr=err)
        steps = report.get("steps", [])
        changes = [s for s in steps if s["action"] not in ("keep", "orphan")]
        diff = {"before": "".join("%s %s: %s\n" % (s["kind"], s["name"], "absent" if s["action"] == "create"
                                                   else "present") for s in changes),
                "after": "".join("%s %s: %s\n" % (s["kind"], s["name"], s["action"]) for s in changes)}
        module.exit_json(changed=bool(report.get("changed")), steps=steps, diff=diff,
                         project=report.get("project"))
    finally:
        if tmpfile:
            os.unlink(tmpfile)


if __name__ == "__main__":
    main()
