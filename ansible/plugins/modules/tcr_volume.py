#!/usr/bin/python
# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tcr_volume
short_description: Manage a tcr named volume on a board
options:
  name: {type: str, required: true}
  labels: {type: dict}
  state: {type: str, choices: [present, absent], default: present}
  tcr_path: {type: str, default: tcr}
  socket: {type: str}
"""

EXAMPLES = r"""
- tcr.tcr.tcr_volume:
    name: sensor-data
"""

RETURN = r"""
volume:
  description: The volume as `tcr volume inspect` shows it.
  type: dict
  returned: when present
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tcr.tcr.plugins.module_utils.tcr import COMMON_ARGS, Tcr, labels_args


def main():
    args = dict(name=dict(type="str", required=True), labels=dict(type="dict"),
                state=dict(type="str", choices=["present", "absent"], default="present"))
    args.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=args, supports_check_mode=True)
    p = module.params
    tcr = Tcr(module)
    cur = tcr.inspect("volume", p["name"])
    if p["state"] == "absent":
        if cur is None:
            module.exit_json(changed=False)
        if not module.check_mode:
            tcr.run(["volume", "rm", p["name"]])
        module.exit_json(changed=True, diff={"before": "volume %s\n" % p["name"], "after": ""})
    if cur is not None:
        module.exit_json(changed=False, volume=cur)
    if not module.check_mode:
        tcr.run(["volume", "create"] + labels_args(p["labels"]) + [p["name"]])
        cur = tcr.inspect("volume", p["name"])
    module.exit_json(changed=True, volume=cur or {}, diff={"before": "", "after": "volume %s\n" % p["name"]})


if __name__ == "__main__":
    main()
