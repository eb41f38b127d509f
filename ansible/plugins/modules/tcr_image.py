#!/usr/bin/python
# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tcr_image
short_description: Load a tcr squashfs image on a board (only when its id is not there yet)
description:
  - With I(src), the file is on the controller; the action plugin reads the image id from the
    file's image-info.json (unsquashfs), asks the board whether that id is loaded and copies and
    loads the file only when it is not, so a second run transfers nothing and reports no change.
  - With I(path), the file is already on the board.
options:
  src:
    description: A .sqfs made by tcr-create-image, on the controller.
    type: path
  path:
    description: A .sqfs already on the board.
    type: path
  id:
    description: The image id, when known (skips reading it from the file).
    type: str
  name:
    description: With state absent, the image to remove (name:tag or id).
    type: str
  state:
    type: str
    choices: [present, absent]
    default: present
  remove_source:
    description: Delete I(path) after a successful load.
    type: bool
    default: false
  tcr_path:
    type: str
    default: tcr
  socket:
    type: str
"""

EXAMPLES = r"""
- tcr.tcr.tcr_image:
    src: build/web-1.4.sqfs
"""

RETURN = r"""
id:
  description: The image id.
  type: str
  returned: when known
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tcr.tcr.plugins.module_utils.tcr import COMMON_ARGS, Tcr


def main():
    args = dict(
        path=dict(type="path"),
        id=dict(type="str"),
        name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        remove_source=dict(type="bool", default=False),
        probe=dict(type="bool", default=False),  # internal: the action plugin's "is this id loaded?"
    )
    args.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=args, supports_check_mode=True)
    p = module.params
    tcr = Tcr(module)
    if p["state"] == "absent":
        ref = p["name"] or p["id"]
        if not ref:
            module.fail_json(msg="state absent needs name or id")
        img = tcr.inspect("image", ref)
        if img is None:
            module.exit_json(changed=False)
        if not module.check_mode:
            tcr.run(["image", "rm", img.get("id") or ref])
        module.exit_json(changed=True, id=img.get("id"), diff={"before": "image %s\n" % ref, "after": ""})
    if p["id"] and tcr.inspect("image", p["id"]) is not None:
        module.exit_json(changed=False, present=True, id=p["id"])
    if p["probe"]:
        module.exit_json(changed=False, present=False, id=p["id"])
    if not p["path"]:
        module.fail_json(msg="image %s is not loaded and no file was given (src or path)" % (p["id"] or ""))
    images = tcr.json(["images", "--format", "json"]) or []
    before = set(i.get("Id") or i.get("ID") for i in images)
    if module.check_mode:
        module.exit_json(changed=True, id=p["id"], diff={"before": "", "after": "image %s\n" % p["path"]})
    rc, out, err = tcr.run(["image", "load", "-q", p["path"]])
    image_id = out.strip().splitlines()[0] if out.strip() else ""
    if p["remove_source"]:
        try:
            import os

            os.unlink(p["path"])
        except OSError:
            pass
    changed = image_id not in before
    module.exit_json(changed=changed, id=image_id,
                     diff={"before": "", "after": "image %s\n" % image_id} if changed else {})


if __name__ == "__main__":
    main()
