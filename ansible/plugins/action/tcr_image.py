# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)
"""tcr_image with `src` on the controller: copy the .sqfs only when the board lacks its image id."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULE = "tcr.tcr.tcr_image"


def local_image_id(path):
    """The id in the image's image-info.json (read with unsquashfs), or None when it cannot be read."""
    try:
        r = subprocess.run(["unsquashfs", "-cat", path, "image-info.json"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode == 0:
            img = json.loads(r.stdout.decode("utf-8"))["image"]
            if img.get("id"):
                return str(img["id"])
            from ansible_collections.tcr.tcr.plugins.module_utils.xxh64 import image_id

            return image_id(str(img["digest"]))  # tcr's rule for an image-info.json without an id
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        pass
    return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        src = args.pop("src", None)
        if src is None:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        try:
            src = self._find_needle("files", src)
        except Exception as exc:
            raise AnsibleActionFail("tcr_image: cannot find src %s: %s" % (src, exc))
        image_id = args.get("id") or local_image_id(src)
        if image_id:
            probe = self._execute_module(module_name=MODULE, module_args=dict(args, id=image_id, probe=True),
                                         task_vars=task_vars)
            if probe.get("failed") or probe.get("present"):
                result.update(probe)
                result.pop("present", None)
                return result
        if self._task.check_mode:
            result.update(changed=True, id=image_id,
                          diff={"before": "", "after": "image %s\n" % (image_id or os.path.basename(src))})
            return result
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        remote = self._connection._shell.join_path(tmpdir, os.path.basename(src))
        try:
            self._transfer_file(src, remote)
            self._fixup_perms2((tmpdir, remote))
            args.update(path=remote, remove_source=True)
            if image_id:
                args["id"] = image_id
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(tmpdir)
        return result
