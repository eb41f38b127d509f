# -*- coding: utf-8 -*-
# MIT License (see the tcr repository)
"""Shared by the tcr modules: run the board's `tcr` client, parse its `--format json` output.

Every module talks to tcrd only through the `tcr` command on the board (the same interface a user
types), so a module works with any tcrd the client can reach (--socket).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

COMMON_ARGS = dict(
    tcr_path=dict(type="str", default="tcr"),
    socket=dict(type="str"),
)


class Tcr(object):
    def __init__(self, module):
        self.module = module
        path = module.params.get("tcr_path") or "tcr"
        self.bin = path if os.sep in path else module.get_bin_path(path, required=True)
        self.socket = module.params.get("socket")

    def argv(self, args):
        base = [self.bin]
        if self.socket:
            base += ["--socket", self.socket]
        return base + list(args)

    def run(self, args, check=True, data=None, cwd=None):
        rc, out, err = self.module.run_command(self.argv(args), data=data, cwd=cwd)
        if check and rc != 0:
            self.module.fail_json(msg="tcr %s failed: %s" % (" ".join(args[:2]), (err or out).strip()),
                                  rc=rc, stdout=out, stderr=err, cmd=self.argv(args))
        return rc, out, err

    def json(self, args, check=True):
        rc, out, err = self.run(list(args), check=check)
        if rc != 0:
            return None
        try:
            return json.loads(out or "null")
        except ValueError:
            self.module.fail_json(msg="tcr %s: output is not JSON" % " ".join(args[:2]), stdout=out)

    def inspect(self, kind, name):
        """The object as `tcr inspect` shows it, or None when it does not exist."""
        args = ["inspect", "--type", kind, "--format", "json", name]
        rc, out, err = self.run(args, check=False)
        if rc != 0:
            return None
        try:
            items = json.loads(out or "[]")
        except ValueError:
            return None
        return items[0] if isinstance(items, list) and items else None


def labels_args(labels):
    return ["--label=%s=%s" % (k, v) for k, v in sorted((labels or {}).items())]
