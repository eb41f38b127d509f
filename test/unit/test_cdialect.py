"""tcr.commands.cdialect without a daemon: the C client's argv -> RunOptions, the C daemon's output
formats and error texts, and the routing of the compat socket's dispatcher (managers are doubles
here; test/root/test_cdialect.py replays the C tool's recorded session against a real tcrd)."""

import json
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.commands import cdialect
from tcr.commands.base import Output, Pending
from tcr.commands.cdialect import CError, make_dispatch, run_options
from tcr.common.errors import ContainerNotFound, ImageNotFound, InUse, NetworkNotFound, TcrError
from tcr.common.record import replace
from tcr.containers.runrecord import RestartPolicy, RunOptions, Tmpfs, Volume

# ---- run argv -> RunOptions -------------------------------------------------------------------


def test_c_run_flags_map_to_run_options():
    o = run_options(["-d", "--name", "web", "--rm", "--read-only", "-t", "-e", "A=1", "-e", "B=x=y",
                     "-v", "data:/data:ro", "-v", "/abs://abs/", "--tmpfs", "/t:1024", "-p", "8080:80",
                     "-p", "127.0.0.1:53:53/tcp+udp", "--network", "lab", "--stop-timeout", "3",
                     "img:1", "/bin/sh", "-c", "echo -d"], "/home/u")
    assert o.image == "img:1" and o.command == ("/bin/sh", "-c", "echo -d") and o.entrypoint == ()
    assert (o.detach, o.name, o.rm, o.read_only, o.tty) == (True, "web", True, True, True)
    assert o.env == ("A=1", "B=x=y")
    assert o.volumes == (Volume("/home/u/data", "/data", True), Volume("/abs", "/abs", False))
    assert o.tmpfs == (Tmpfs("/t", 1024),)
    assert o.publish == ("8080:80/tcp", "127.0.0.1:53:53/tcp", "127.0.0.1:53:53/udp")
    assert (o.network, o.network_create, o.stop_timeout) == ("lab", True, 3)


def test_c_run_defaults_and_network_words():
    o = run_options(["img"], "/")
    assert (o.detach, o.network, o.network_create, o.command, o.entrypoint) == \
        (False, "tcr_default", False, (), None)  # no COMMAND: the image's entrypoint and cmd
    assert run_options(["--no-network", "img"], "/").network == "none"
    # the C daemon made a bridge called "none"; host means the host's network
    assert (run_options(["--network", "none", "img"], "/").network, ) == ("none",)
    assert run_options(["--network", "host", "img"], "/").network_create is False
    assert run_options(["--network", "bridge", "img"], "/").network == "tcr_default"
    assert run_options(["-d", "--restart", "always", "img"], "/").restart == RestartPolicy("always")
    with pytest.raises(CError, match="mutually exclusive"):
        run_options(["--no-network", "--network", "x", "img"], "/")


@pytest.mark.parametrize("argv, code, message", [
    (["--bogus", "img"], 6, "unknown option: --bogus"),
    (["--name"], 6, "unknown option: --name"),  # a value flag without its value, as the C daemon
    ([], 6, "no image specified"),
    (["-d", "-e", "X=1"], 6, "no image specified"),
    (["-e", "NOVALUE", "img"], 6, "bad -e format, expected KEY=VALUE"),
    (["-e", "=x", "img"], 6, "bad -e format, expected KEY=VALUE"),
    (["-v", "/only", "img"], 6, "bad -v format, expected src:dst[:ro]"),
    (["-v", "/a:relative", "img"], 6, "bad -v format, expected src:dst[:ro]"),
    (["--tmpfs", "rel:10", "img"], 6, "bad --tmpfs format, expected dst[:size]"),
    (["-p", "80", "img"], 6, "bad -p format, expected [hostIP:]hostPort:containerPort[/proto]"),
    (["-p", "1:2:3:4", "img"], 6, "bad -p format, expected [hostIP:]hostPort:containerPort[/proto]"),
    (["-p", "80:80/sctp", "img"], 6, "bad -p format, expected [hostIP:]hostPort:containerPort[/proto]"),
    (["-p", "notanip:80:80", "img"], 6, "bad -p format, expected [hostIP:]hostPort:containerPort[/proto]"),
    (["--restart", "sometimes", "img"], 6, "bad --restart value, expected no, on-failure[:N], "
                                           "unless-stopped or always"),
    (["--stop-timeout", "-1", "img"], 6, "bad --stop-timeout value, expected whole seconds"),
    (["--network", "bad name", "img"], 6, "invalid network name: 'bad name'"),
    (["--restart", "always", "img"], 6, "--restart always needs a detached container (-d)"),
    (["--config", "a.json", "-d"], 6, "--config cannot be combined with other arguments"),
])
def test_c_run_errors(argv, code, message):
    with pytest.raises(CError) as e:
        run_options(argv, "/", read_file=lambda p: "{}")
    assert (e.value.code, e.value.message, e.value.hint) == (code, message, None)


def test_unknown_option_is_cut_like_the_c_daemons_buffer():
    with pytest.raises(CError) as e:
        run_options(["-" + "x" * 400, "img"], "/")
    assert len(e.value.message) == 255 and e.value.message.startswith("unknown option: -xxx")


def test_config_file_alone():
    files = {"/w/run.json": json.dumps({"image": "img", "detached": True, "network": "lab",
                                        "mounts": [{"source": "d", "destination": "/d"}],
                                        "command": ["/bin/true"],
                                        "ports": [{"hostPort": 1, "containerPort": 2}]}),
             "/w/none.json": json.dumps({"image": "img", "noNetwork": True}),
             "/w/bad.json": "{not json", "/w/both.json": json.dumps({"image": "i", "network": "a",
                                                                       "noNetwork": True})}
    read = files.__getitem__
    o = run_options(["--config", "run.json"], "/w", read_file=read)
    assert (o.image, o.detach, o.network, o.network_create, o.command, o.entrypoint) == \
        ("img", True, "lab", True, ("/bin/true",), ())
    assert o.volumes == (Volume("/w/d", "/d"),) and o.publish == ("1:2/tcp",)
    assert o.config_file == "/w/run.json"
    assert run_options(["--config", "/w/none.json"], "/", read_file=read).network == "none"
    with pytest.raises(CError, match="^failed to load config file: /w/bad.json$"):
        run_options(["--config", "bad.json"], "/w", read_file=read)
    with pytest.raises(CError, match="mutually exclusive"):
        run_options(["--config", "both.json"], "/w", read_file=read)

    def missing(path):
        raise TcrError(f"{path}: No such file or directory")

    with pytest.raises(CError, match="^failed to load config file: /w/x.json$"):
        run_options(["--config", "x.json"], "/w", read_file=missing)


args_st = st.lists(st.one_of(
    st.sampled_from(["-d", "--rm", "-t", "--read-only", "--no-network", "--name", "-e", "-v", "--tmpfs", "-p",
                     "--network", "--restart", "--stop-timeout", "--config", "img", "none", "host", "a:b",
                     "/a:/b:ro", "80:80", "K=V", "always", "10", "-x", ""]),
    st.text(max_size=12)), max_size=12)


@settings(max_examples=500, deadline=None)
@given(args_st)
def test_c_run_parser_never_fails_badly(argv):
    """Any argv: validated RunOptions or one CError line, nothing else."""
    try:
        o = run_options(argv, "/w", read_file=lambda p: '{"image": "img"}')
    except CError as e:
        assert e.message and "\n" not in e.message and e.hint is None
        return
    assert isinstance(o, RunOptions) and o.image and not o.image.startswith("-")
    assert RunOptions.from_dict(o.to_dict()) == o


@settings(max_examples=300, deadline=None)
@given(args_st)
def test_c_exec_parser_never_fails_badly(argv):
    try:
        detach, tty, env, ref, cmd = cdialect._split_exec(argv)
    except CError as e:
        assert e.message and "\n" not in e.message
        return
    assert not ref.startswith("-") and cmd and all("=" in e for e in env)  # "" is looked up (not found)


# ---- rendering --------------------------------------------------------------------------------


def test_formats_are_the_c_daemons():
    assert cdialect.ps_line("edcde0f4d3481e9b", "cpw1", "docker.io/library/bb", "latest", "running") == \
        "edcde0f4d3481e9b cpw1                 docker.io/library/bb:latest     running\n"
    assert cdialect.ps_line("edcde0f4d3481e9b", "n", "local/x", "", "stopped") == \
        "edcde0f4d3481e9b n                    local/x                  stopped\n"
    assert cdialect.image_ls_line("0e1505a22dadb913", "docker.io/library/bb", "latest", True) == \
        "0e1505a22dadb913 docker.io/library/bb           latest     yes\n"
    assert cdialect.image_ls_line("0e1505a22dadb913", "x", None, False) == \
        "0e1505a22dadb913 x                              <none>     no\n"
    assert cdialect.network_ls_line("cpnet", "10.211.1.0/24", "10.211.1.1") == \
        "cpnet                10.211.1.0/24      10.211.1.1\n"
    assert [cdialect.c_status(s) for s in ("running", "created", "exited", "restarting")] == \
        ["running", "stopped", "stopped", "restarting"]


def test_errors_in_the_c_words():
    e = cdialect.c_error(ContainerNotFound("no such container: web", hint="see 'tcr ps -a'"))
    assert (e.code, e.message, e.hint) == (2, "container not found", None)
    assert cdialect.c_error(ImageNotFound("no such image 'x'")).message == "image not found"
    assert cdialect.c_error(NetworkNotFound("network 'x' not found", hint="h")).message == "network not found"
    e = cdialect.c_error(InUse("the container name 'a' is already in use", hint="h"))
    assert (e.code, e.message, e.hint) == (5, "the container name 'a' is already in use", None)


# ---- dispatch with manager doubles ------------------------------------------------------------


def _ctr(cid, name, state="running", created=1.0, network="tcr_default", image_id="i1",
         image_ref="bb:latest"):
    rec = types.SimpleNamespace(id=cid, name=name, state=state, created=created, image_id=image_id,
                                image_ref=image_ref)
    return types.SimpleNamespace(rec=rec, opts=RunOptions(image="x", network=network))


class Containers:
    def __init__(self, cs):
        self.cs = {c.rec.id: c for c in cs}
        self.calls = []
        self.done = []

    def list(self):
        return sorted(self.cs.values(), key=lambda c: -c.rec.created)  # tcr's order: newest first

    def find(self, ref):
        for c in self.cs.values():
            if ref in (c.rec.id, c.rec.name):
                return c
        raise ContainerNotFound(f"no such container: {ref}", hint="see 'tcr ps -a'")

    def remove(self, c, force=False):
        self.calls.append(("remove", c.rec.name, force))
        del self.cs[c.rec.id]

    def stop(self, c, timeout, done):
        self.calls.append(("stop", c.rec.name, timeout))
        self.done.append(done)

    def create(self, opts, interactive=False, persist=True):
        self.calls.append(("create", opts.image, interactive))
        c = _ctr("0123456789abcdef", opts.name or "gen", state="created")
        self.cs[c.rec.id] = c
        return c

    def start(self, c):
        if c.rec.name == "broken":
            from tcr.containers.manager import StartFailed

            raise StartFailed("cannot run '/nope' in container broken: not found", 127)
        c.rec.state = "running"

    def run_interactive(self, c, pid):
        return ["crun", "run", c.rec.id, str(pid)]

    def exec_args(self, c, cmd, tty, env, user, cwd):
        return ["crun", "exec", c.rec.id] + list(cmd)


class Timer:
    def __init__(self, cb):
        self.cb, self.cancelled = cb, False

    def cancel(self):
        self.cancelled = True


@pytest.fixture
def env():
    info = types.SimpleNamespace(name="docker.io/library/bb", tag="latest")
    img = types.SimpleNamespace(id="i1", info=info, tags=("docker.io/library/bb:latest",))
    old = types.SimpleNamespace(id="i2", info=replace_ns(info, tag="1"), tags=())
    images = types.SimpleNamespace(records={"i1": img, "i2": old}, is_mounted=lambda r: r.id == "i1",
                                   removed=[])

    def get(ref):
        for r in images.records.values():
            if ref in (r.id, r.tags[0] if r.tags else None):
                return r
        raise ImageNotFound(f"no such image: {ref}")

    images.get = get
    images.remove = images.removed.append
    nets = {"tcr_default": {"name": "tcr_default", "subnet": "10.88.0.0/24", "gateway": "10.88.0.1",
                            "created": 5.0},
            "alpha": {"name": "alpha", "subnet": "10.88.1.0/24", "gateway": "10.88.1.1", "created": 9.0}}
    networks = types.SimpleNamespace(list=lambda: sorted(nets.values(), key=lambda n: n["name"]), removed=[])

    def nget(name):
        if name not in nets:
            raise NetworkNotFound(f"network {name!r} not found", hint="see 'tcr network ls'")
        return types.SimpleNamespace(leases=())

    networks.get = nget
    networks.remove = networks.removed.append
    timers = []
    loop = types.SimpleNamespace(call_later=lambda d, cb: timers.append(Timer(cb)) or timers[-1])
    cs = Containers([_ctr("bbbbbbbbbbbbbbbb", "second", "exited", created=2.0, network="alpha"),
                     _ctr("aaaaaaaaaaaaaaaa", "first", created=1.0)])
    daemon = types.SimpleNamespace(containers=cs, images=images, networks=networks, loop=loop)
    own_calls = []

    def own(method, args, pwd, pid, uid, gid, stream):
        own_calls.append((method, list(args), stream is not None))
        return Output(0, "own\n")

    d = make_dispatch(daemon, own)
    return types.SimpleNamespace(d=lambda m, *a, stream=None: d(m, list(a), "/w", 4242, 0, 0, stream),
                                 daemon=daemon, cs=cs, own=own_calls, timers=timers, images=images,
                                 networks=networks)


def replace_ns(ns, **kw):
    d = dict(vars(ns))
    d.update(kw)
    return types.SimpleNamespace(**d)


def test_ps_lists_all_containers_in_creation_order(env):
    out = env.d("ps")
    assert out == Output(0, "ID               NAME                 IMAGE                    STATUS\n"
                            "aaaaaaaaaaaaaaaa first                docker.io/library/bb:latest     running\n"
                            "bbbbbbbbbbbbbbbb second               docker.io/library/bb:latest     stopped\n")


def test_image_ls_and_network_ls(env):
    assert env.d("image", "ls").stdout == (
        "IMAGE ID         NAME                           TAG        MOUNTED\n"
        "i1               docker.io/library/bb           latest     yes\n"
        "i2               docker.io/library/bb           <none>     no\n")  # its tag went to a newer image
    assert env.d("network", "ls").stdout == (
        "NAME                 SUBNET             GATEWAY\n"
        "tcr_default          10.88.0.0/24       10.88.0.1\n"
        "alpha                10.88.1.0/24       10.88.1.1\n")  # creation order, as the C daemon


def test_stop_kill_rm_answer_with_the_id(env):
    p = env.d("stop", "first")
    assert isinstance(p, Pending) and not p.done and env.cs.calls[-1] == ("stop", "first", None)
    got = []
    p.bind(got.append)
    env.cs.done[-1](0)  # the container exited
    assert got == [Output(0, "aaaaaaaaaaaaaaaa\n")] and env.timers[-1].cancelled
    k = env.d("kill", "first")
    assert env.cs.calls[-1] == ("stop", "first", 0)  # SIGKILL at once, answered when it exited
    env.cs.done[-1](137)
    got = []
    k.bind(got.append)
    assert got == [Output(0, "aaaaaaaaaaaaaaaa\n")]
    assert env.d("rm", "first") == Output(0, "aaaaaaaaaaaaaaaa\n")
    assert env.cs.calls[-1] == ("remove", "first", True)  # running or not


def test_a_long_stop_is_answered_before_the_c_clients_timeout(env):
    p = env.d("stop", "first")
    got = []
    p.bind(got.append)
    assert not got and env.timers[-1].cb and cdialect.STOP_REPLY_BY < 30
    env.timers[-1].cb()  # the stop goes on; the client gets its answer
    assert got == [Output(0, "aaaaaaaaaaaaaaaa\n")]
    env.cs.done[-1](0)  # the exit later changes nothing
    assert len(got) == 1


@pytest.fixture
def real_loop(env):
    """`run` parses its flags in a forked worker: a real event loop drives it."""
    from tcr.daemon.loop import EventLoop

    env.daemon.loop = loop = EventLoop()
    yield loop
    loop.close()


def resolved(loop, out):
    from tcr.commands.base import Pending

    if not isinstance(out, Pending):
        return out
    got = []
    out.bind(got.append)
    while not got:
        loop.run_once(5.0)
    return got[0]


def test_run_detached_interactive_and_failed(env, real_loop):
    def run(*argv):
        return resolved(real_loop, env.d("run", *argv))

    assert run("-d", "--name", "web", "img") == Output(0, "0123456789abcdef\n")
    assert env.cs.calls[0] == ("create", "img", False)
    env.cs.remove(env.cs.find("web"))
    out = run("--rm", "img", "/bin/echo", "hi")
    assert out.exec_args == ["crun", "run", "0123456789abcdef", "4242"]  # the client execs crun
    env.cs.remove(env.cs.find("gen"))
    e = run("-d", "--name", "broken", "img")
    assert isinstance(e, CError)
    assert (e.code, e.message) == (7, "failed to start container: cannot run '/nope' in container broken: "
                                      "not found")
    assert ("remove", "broken", True) in env.cs.calls  # like the C daemon: nothing left behind
    e = run("--bogus", "img")  # a flag error, from the worker
    assert (e.code, e.message) == (6, "unknown option: --bogus")


def test_exec(env):
    assert env.d("exec", "first", "ls", "-l").exec_args == ["crun", "exec", "aaaaaaaaaaaaaaaa", "ls", "-l"]
    with pytest.raises(CError, match="^container is not running$"):
        env.d("exec", "second", "ls")
    with pytest.raises(CError, match="^container not found$"):
        env.d("exec", "nosuch", "ls")


def test_image_and_network_rm(env):
    with pytest.raises(CError) as e:
        env.d("image", "rm", "i1")
    assert (e.value.code, e.value.message) == (5, "image in use by 2 container(s)")
    env.daemon.containers.cs.clear()
    assert env.d("image", "rm", "docker.io/library/bb:latest") == Output(0, "i1\n")
    with pytest.raises(CError, match="^image not found$"):
        env.d("image", "rm", "nope")
    assert env.d("network", "rm", "alpha") == Output(0, "alpha\n") and env.networks.removed == ["alpha"]
    with pytest.raises(CError) as e:
        env.d("network", "rm", "nope")
    assert (e.value.code, e.value.message) == (4, "network not found")


def test_network_in_use_counts_stopped_containers(env):
    with pytest.raises(CError) as e:
        env.d("network", "rm", "alpha")  # "second" is stopped but still refers to it
    assert (e.value.code, e.value.message) == (5, "network in use by 1 container(s)")


def test_routing(env):
    with pytest.raises(CError) as e:
        env.d("bogus")
    assert (e.value.code, e.value.message) == (1, "unknown command: bogus")
    with pytest.raises(CError) as e:
        env.d("x" * 300)
    assert len(e.value.message) == 127  # the C daemon's msg[128]
    with pytest.raises(CError, match="^unknown image subcommand: frob$"):
        env.d("image", "frob")
    with pytest.raises(CError, match=r"^usage: network <ls\|rm> \[args...\]$"):
        env.d("network")
    with pytest.raises(CError, match="^unknown command: _incoming$"):
        env.d("_incoming")
    # commands the C tool lacks: tcr's own
    assert env.d("logs", "first").stdout == "own\n" and env.d("image", "inspect", "i1").stdout == "own\n"
    assert env.d("network", "create", "n").stdout == "own\n"
    # tcr's own client (it asks for stream messages) is served in its own dialect
    assert env.d("ps", stream=lambda k, t: None).stdout == "own\n"
    assert env.own == [("logs", ["first"], False), ("image", ["inspect", "i1"], False),
                       ("network", ["create", "n"], False), ("ps", [], True)]
    assert "--no-network" in env.d("help").stdout


def test_records_keep_the_network_rule():
    o = replace(RunOptions(image="x", network="lab"), network_create=True)
    assert RunOptions.from_dict(o.to_dict()) == o
    assert RunOptions.from_dict({"image": "x"}).network_create is False  # records from before
