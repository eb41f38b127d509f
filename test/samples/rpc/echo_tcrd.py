"""A real RpcServer on a real EventLoop with a scripted dispatch double (for transport/CLI tests).

usage: python echo_tcrd.py SOCKET_PATH [ABSTRACT_NAME|-]     prints "ready" once listening.

Methods of the double:
  echo ARGS...         stdout = JSON of {args, pwd, pid, uid, gid, stream}
  exit N [OUT [ERR]]   exit code N with the given stdout/stderr
  fail CODE MSG        raise TcrError(MSG, code=CODE) (hint "a hint")
  crash                raise RuntimeError (an internal error)
  exec ARGV...         execArgs = ARGV
  later SECONDS TEXT   a Pending resolved from a timer
  stream N             N stream chunks (stdout), then "done\\n"
  big N                stdout of N bytes
  cancelled            a Pending that never resolves; writes "cancelled" to stderr when cancelled
  other methods        UsageError("unknown command")
"""

import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "target"))

from tcr.commands.base import Output, Pending  # noqa: E402
from tcr.common.errors import TcrError, UsageError  # noqa: E402
from tcr.daemon.loop import EventLoop  # noqa: E402
from tcr.rpc.server import RpcServer  # noqa: E402


def make(loop):
    def dispatch(method, args, pwd, pid, uid, gid, stream):
        if method == "echo":
            info = {
                "args": args,
                "pwd": pwd,
                "pid": pid,
                "uid": uid,
                "gid": gid,
                "stream": stream is not None,
            }
            return Output(0, json.dumps(info))
        if method == "exit":
            return Output(int(args[0]), args[1] if len(args) > 1 else "", args[2] if len(args) > 2 else "")
        if method == "fail":
            raise TcrError(args[1], hint="a hint", code=int(args[0]))
        if method == "crash":
            raise RuntimeError("boom")
        if method == "exec":
            return Output(exec_args=list(args))
        if method == "later":
            p = Pending()
            loop.call_later(float(args[0]), lambda: p.resolve(Output(0, args[1])))
            return p
        if method == "stream":
            p = Pending()
            n = int(args[0])

            def tick(i=0):
                if p.done:
                    return
                if i < n:
                    if stream:
                        stream("stdout", f"chunk {i}\n")
                    loop.call_later(0.001, lambda: tick(i + 1))
                else:
                    p.resolve(Output(0, "done\n"))

            tick()
            return p
        if method == "big":
            return Output(0, "x" * int(args[0]))
        if method == "cancelled":
            p = Pending()
            p.on_cancel = lambda: sys.stderr.write("cancelled\n") or sys.stderr.flush()
            return p
        raise UsageError(f"unknown command: {method!r}")

    return dispatch


def main():
    path = sys.argv[1]
    abstract = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    loop = EventLoop()
    srv = RpcServer(loop, make(loop), path, abstract_name=abstract, socket_group=None)
    srv.start()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    print("ready", flush=True)
    loop.run()
    srv.close()
    loop.close()


if __name__ == "__main__":
    main()
