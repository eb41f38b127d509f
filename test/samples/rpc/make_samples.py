"""Writes the protocol samples in this folder (kept for provenance; re-run only on purpose).

Each NAME.request holds one request message, NAME.replies one message per line (several for
streaming), byte for byte as they cross the socket. Requests are in the exact shape the C client
sends ({"id","method","params":{"args","pwd","pid"}}, key order included); replies in the shape
of the C daemon's reply_output/reply_exec/reply_error (exitCode, stdOut, stdErr / execArgs /
code, message). Texts follow tcr's commands; tests check every file round-trips through
tcr.rpc.protocol and tcr.rpc.client unchanged.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def c(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def req(method, args, stream=False, rid=1, pwd="/root", pid=4242):
    params = {"args": args, "pwd": pwd, "pid": pid}
    if stream:
        params["stream"] = True
    return {"id": rid, "method": method, "params": params}


def out(stdout="", stderr="", code=0, rid=1):
    return {"id": rid, "result": {"exitCode": code, "stdOut": stdout, "stdErr": stderr}}


def err(code, message, rid=1, hint=None):
    e = {"code": code, "message": message}
    if hint:
        e["hint"] = hint
    return {"id": rid, "error": e}


IMG = "3f2a9c1d5e7b8a60"
CTR = "9b1e4f7a2c3d5e60"
SAMPLES = {
    "image_ls": (
        req("image", ["ls"]),
        [
            out(
                "IMAGE ID           NAME                         TAG      ARCH    MOUNTED\n"
                f"{IMG}   docker.io/library/busybox    latest   amd64   yes\n"
            )
        ],
    ),
    "image_ls_json": (
        req("image", ["ls", "--format", "json"], stream=True),
        [
            out(
                '[\n  {\n    "arch": "amd64",\n    "id": "'
                + IMG
                + '",\n    "name": "docker.io/library/busybox",\n'
                '    "tag": "latest"\n  }\n]\n'
            )
        ],
    ),
    "image_load": (req("image", ["load", "./busybox_latest.sqfs"]), [out(IMG + "\n")]),
    "image_load_missing": (
        req("image", ["load", "/nope.sqfs"]),
        [err(6, "/nope.sqfs: no such file", hint="check the path")],
    ),
    "image_inspect": (
        req("image", ["inspect", "busybox"]),
        [
            out(
                '[\n  {\n    "id": "'
                + IMG
                + '",\n    "repository": "library/busybox",\n    "tag": "latest"\n  }\n]\n'
            )
        ],
    ),
    "image_rm": (req("image", ["rm", "busybox"]), [out(IMG + "\n")]),
    "image_rm_in_use": (req("image", ["rm", "busybox"]), [err(5, f"image {IMG} is in use by container web")]),
    "image_rm_not_found": (req("image", ["rm", "nginx"]), [err(3, "image not found: nginx")]),
    "run_detached": (
        req("run", ["-d", "--name", "web", "-p", "8080:80", "busybox", "httpd", "-f"]),
        [out(CTR + "\n")],
    ),
    "run_interactive": (
        req("run", ["-it", "--rm", "busybox", "/bin/sh"]),
        [
            {
                "id": 1,
                "result": {
                    "execArgs": [
                        "crun",
                        "--root",
                        "/run/tcr/crun",
                        "run",
                        "--bundle",
                        f"/var/lib/tcr/containers/{CTR}/bundle",
                        CTR,
                    ]
                },
            }
        ],
    ),
    "exec_interactive": (
        req("exec", ["-it", "web", "sh"]),
        [{"id": 1, "result": {"execArgs": ["crun", "--root", "/run/tcr/crun", "exec", "-t", CTR, "sh"]}}],
    ),
    "ps": (
        req("ps", ["-a"]),
        [
            out(
                "CONTAINER ID       NAME   IMAGE                               STATUS\n"
                f"{CTR}   web    docker.io/library/busybox:latest    running\n"
            )
        ],
    ),
    "logs": (req("logs", ["-n", "2", "web"]), [out("line 1\nline 2\n")]),
    "logs_follow": (
        req("logs", ["-f", "web"], stream=True, rid=7),
        [
            {"id": 7, "stream": {"stdOut": "line 1\n"}},
            {"id": 7, "stream": {"stdErr": "warning: é\n"}},
            out("", rid=7),
        ],
    ),
    "stop": (req("stop", ["-t", "5", "web"]), [out("web\n")]),
    "stop_not_found": (req("stop", ["nosuch"]), [err(2, "container not found: nosuch")]),
    "network_not_found": (req("network", ["rm", "nonet"]), [err(4, "network not found: nonet")]),
    "unknown_command": (
        req("frobnicate", []),
        [err(1, "unknown command: 'frobnicate'", hint="see 'tcr help'")],
    ),
    "internal_error": (req("ps", []), [err(7, "internal error: OSError: [Errno 5] Input/output error")]),
    "exit_code": (req("wait", ["web"]), [out("3\n", code=3)]),
    "no_pwd": (
        {"id": 2, "method": "help", "params": {"args": [], "pid": 99}},
        [out("Usage: tcr ...\n", rid=2)],
    ),
}

# Replies to broken input carry id 0 when the id could not be read.
BAD = {
    "malformed_json": (
        b'{"id":1,"method":',
        [err(1, "malformed JSON: Expecting value: line 1 column 18 (char 17)", 0)],
    ),
    "wrong_types": (
        b'{"id":5,"method":"ps","params":{"args":"-a"}}',
        [err(6, "invalid request: 'params.args' must be an array of strings", 5)],
    ),
}


def main():
    for name, (rq, replies) in SAMPLES.items():
        with open(os.path.join(HERE, name + ".request"), "wb") as f:
            f.write(c(rq).encode())
        with open(os.path.join(HERE, name + ".replies"), "wb") as f:
            f.write("".join(c(r) + "\n" for r in replies).encode())
    for name, (raw, replies) in BAD.items():
        with open(os.path.join(HERE, name + ".bad"), "wb") as f:
            f.write(raw)
        with open(os.path.join(HERE, name + ".replies"), "wb") as f:
            f.write("".join(c(r) + "\n" for r in replies).encode())


if __name__ == "__main__":
    main()
