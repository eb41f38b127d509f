#!/usr/bin/python
# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tcr_network
short_description: Manage a tcr NAT network on a board
options:
  name: {type: str, required: true}
  subnet: {type: str, description: "IPv4 CIDR; a network that exists with another subnet is an error
    (remove it first: its containers keep their addresses)."}
  labels: {type: dict}
  state: {type: str, choices: [present, absent], default: present}
  tcr_path: {type: str, default: tcr}
  socket: {type: str}
"""

EXAMPLES = r"""
- tcr.tcr.tcr_network:
    name: backend
    subnet: 10.99.0.0/24
"""

RETURN = r"""
network:
  description: The network as `tcr network inspect` shows it.
  type: dict
  returned: when present
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tcr.tcr.plugins.module_utils.tcr import COMMON_ARGS, Tcr, labels_args


def main():
    args = dict(name=dict(type="str", required=True), subnet=dict(type="str"), labels=dict(type="dict"),
                state=dict(type="str", choices=["present", "absent"], default="present"))
    args.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=args, supports_check_mode=True)
    p = module.params
    tcr = Tcr(module)
    cur = tcr.inspect("network", p["name"])
    if p["state"] == "absent":
        if cur is None:
            module.exit_json(changed=False)
        if not module.check_mode:
            tcr.run(["network", "rm", p["name"]])
        module.exit_json(changed=True, diff={"before": "network %s\n" % p["name"], "after": ""})
    if cur is not None:
        have = cur.get("subnet") or cur.get("Subnet")
        if p["subnet"] and have and have != p["subnet"]:
            module.fail_json(msg="network %s exists with subnet %s, not %s: remove it first"
                             % (p["name"], have, p["subnet"]))
        module.exit_json(changed=False, network=cur)
    if not module.check_mode:
        a = ["network", "create"] + labels_args(p["labels"])
        if p["subnet"]:
            a.append("--subnet=%s" % p["subnet"])
        tcr.run(a + [p["name"]])
        cur = tcr.inspect("network", p["name"])
    module.exit_json(changed=True, network=cur or {},
                     diff={"before": "", "after": "network %s %s\n" % (p["name"], p["subnet"] or "")})


if __name__ == "__main__":
    main()
