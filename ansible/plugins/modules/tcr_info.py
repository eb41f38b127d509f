#!/usr/bin/python
# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tcr_info
short_description: Facts about tcr on a board (version, images, containers, networks, volumes)
description:
  - Read-only; sets the fact C(tcr) and returns the same data.
options:
  tcr_path: {type: str, default: tcr}
  socket: {type: str}
"""

EXAMPLES = r"""
- tcr.tcr.tcr_info:
- debug:
    msg: "{{ tcr.containers | map(attribute='Names') | list }}"
"""

RETURN = r"""
tcr:
  description: version, images, containers, networks, volumes (each as `tcr ... --format json`).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tcr.tcr.plugins.module_utils.tcr import COMMON_ARGS, Tcr


def main():
    module = AnsibleModule(argument_spec=dict(COMMON_ARGS), supports_check_mode=True)
    tcr = Tcr(module)
    info = {
        "version": tcr.json(["version", "--format", "json"]),
        "images": tcr.json(["images", "--format", "json"]) or [],
        "containers": tcr.json(["ps", "-a", "--format", "json"]) or [],
        "networks": tcr.json(["network", "ls", "--format", "json"]) or [],
        "volumes": tcr.json(["volume", "ls", "--format", "json"], check=False) or [],
    }
    module.exit_json(changed=False, tcr=info, ansible_facts={"tcr": info})


if __name__ == "__main__":
    main()
