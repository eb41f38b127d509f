"""`tcr run` flag parsing into RunOptions, the C tool's run config, and the record round trip."""

import os

import pytest

from tcr.commands.base import HelpRequested
from tcr.common.errors import InvalidArgument, TcrError, UsageError
from tcr.containers.runopts import parse_run_args
from tcr.containers.runrecord import RestartPolicy, RunOptions, Tmpfs, Volume

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples", "runconfig")


def files(mapping):
    """A read_file that serves a dict of path -> text (OSError otherwise)."""

    def read(path):
        if path not in mapping:
            raise FileNotFoundError(2, "No such file or directory", path)
        return mapping[path]

    return read


def parse(*args, pwd="/home/u", read_file=None):
    return parse_run_args(list(args), pwd, read_file or files({}))


def test_defaults():
    o = parse("busybox")
    assert o.image == "busybox" and o.command == () and o.entrypoint is None
    assert not (o.detach or o.interactive or o.tty or o.rm or o.read_only)
    assert o.network == "tcr_default" and o.restart == RestartPolicy("no", 0)
    assert o.stop_timeout == 10 and o.memory is None and o.cpus is None and o.pids_limit is None
    assert o.cap_add == () and o.cap_drop == ()


def test_options_stop_at_image():
    o = parse("-d", "--name", "web", "busybox", "ls", "-l", "--name", "x", "-d")
    assert o.detach and o.name == "web" and o.image == "busybox"
    assert o.command == ("ls", "-l", "--name", "x", "-d")


def test_double_dash_ends_options():
    o = parse("--rm", "--", "busybox", "-x")
    assert o.rm and o.image == "busybox" and o.command == ("-x",)


@pytest.mark.parametrize("flags", [["-it"], ["-ti"], ["-i", "-t"], ["--interactive", "--tty"]])
def test_interactive_tty_forms(flags):
    o = parse(*flags, "busybox", "sh")
    assert o.interactive and o.tty and not o.detach


def test_dit_cluster_and_attached_values():
    o = parse("-dit", "-eA=1", "-p8080:80", "-w/srv", "--name=n1", "busybox")
    assert o.detach and o.interactive and o.tty
    assert o.env == ("A=1",) and o.publish == ("8080:80",) and o.workdir == "/srv" and o.name == "n1"


def test_cluster_with_value_flag_last_takes_next_arg():
    o = parse("-de", "A=1", "busybox", "env")
    assert o.detach and o.env == ("A=1",) and o.command == ("env",)


def test_env_precedence_and_env_file():
    envfile = '# comment\n\nA=from-file\nB=file\nEMPTY=\nRAW="quoted" stays\nUNSET_IN_CLIENT\n'
    o = parse(
        "--env-file",
        "vars.env",
        "-e",
        "A=cli",
        "-e",
        "C=3",
        "-e",
        "ONLYKEY",
        "busybox",
        read_file=files({"/home/u/vars.env": envfile}),
    )
    assert o.env == ("A=from-file", "B=file", "EMPTY=", 'RAW="quoted" stays', "A=cli", "C=3")
    assert o.env_files == ("/home/u/vars.env",)


def test_env_file_missing_and_bad_line():
    with pytest.raises(InvalidArgument, match="cannot read env file /home/u/nope"):
        parse("--env-file", "nope", "busybox")
    with pytest.raises(InvalidArgument, match="line 2"):
        parse("--env-file", "/e", "busybox", read_file=files({"/e": "A=1\n=oops\n"}))


def test_volumes_relative_to_pwd():
    o = parse(
        "-v",
        "./data:/data",
        "-v",
        "sub/dir:/x:ro",
        "-v",
        "/abs:/y:rw",
        "-v",
        "../up:/z",
        "busybox",
        pwd="/home/u/proj",
    )
    assert o.volumes == (
        Volume("/home/u/proj/data", "/data", False),
        Volume("/home/u/proj/sub/dir", "/x", True),
        Volume("/abs", "/y", False),
        Volume("/home/u/up", "/z", False),
    )


@pytest.mark.parametrize(
    "spec, match",
    [
        ("b@d:/data", "invalid volume name"),
        ("rel", "absolute path"),
        ("/a:rel", "absolute path"),
        ("/a:/b:rx", "invalid volume mode"),
        ("/a:/b:ro:z", "invalid volume"),
        (":/b", "invalid volume"),
        ("/a:/", "cannot mount over /"),
    ],
)
def test_bad_volumes(spec, match):
    with pytest.raises(InvalidArgument, match=match):
        parse("-v", spec, "busybox")


def test_tmpfs_forms():
    o = parse(
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/tmp:size=8m,mode=1770,exec",
        "--tmpfs",
        "/c:16m",
        "--tmpfs",
        "/r:ro,noexec,nosuid",
        "busybox",
    )
    assert o.tmpfs == (
        Tmpfs("/run", 64 << 20),
        Tmpfs("/tmp", 8 << 20, 0o1770, True),
        Tmpfs("/c", 16 << 20),
        Tmpfs("/r", 64 << 20, None, False, True),
    )


@pytest.mark.parametrize("spec", ["run", "/t:size=lots", "/t:mode=999", "/t:uid=0", "/:size=1m"])
def test_bad_tmpfs(spec):
    with pytest.raises(InvalidArgument):
        parse("--tmpfs", spec, "busybox")


@pytest.mark.parametrize(
    "text, expect",
    [
        ("no", RestartPolicy("no")),
        ("always", RestartPolicy("always")),
        ("unless-stopped", RestartPolicy("unless-stopped")),
        ("on-failure", RestartPolicy("on-failure", 0)),
        ("on-failure:5", RestartPolicy("on-failure", 5)),
    ],
)
def test_restart(text, expect):
    o = parse("-d", "--restart", text, "busybox")
    assert o.restart == expect


def test_limits_and_misc():
    o = parse(
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "--stop-timeout",
        "3",
        "--stop-signal",
        "int",
        "-u",
        "www:video",
        "-h",
        "box1",
        "--entrypoint",
        "/bin/sh",
        "--read-only",
        "--log-size",
        "2m",
        "--log-files",
        "5",
        "--network",
        "host",
        "busybox",
        "-c",
        "true",
    )
    assert o.memory == 64 << 20 and o.cpus == 0.5 and o.pids_limit == 100 and o.stop_timeout == 3
    assert o.stop_signal == "SIGINT" and o.user == "www:video" and o.hostname == "box1"
    assert o.entrypoint == ("/bin/sh",) and o.command == ("-c", "true") and o.read_only
    assert o.log_max_size == 2 << 20 and o.log_max_files == 5 and o.network == "host"


def test_empty_entrypoint_clears():
    assert parse("--entrypoint", "", "busybox", "echo").entrypoint == ()


def test_log_opt_aliases_and_net_alias():
    o = parse("--log-opt", "max-size=512k", "--log-opt", "max-file=2", "--net", "bridge", "busybox")
    assert o.log_max_size == 512 << 10 and o.log_max_files == 2 and o.network == "tcr_default"


def test_caps_normalized():
    o = parse("--cap-add", "net_admin", "--cap-add", "CAP_SYS_PTRACE", "--cap-drop", "all", "busybox")
    assert o.cap_add == ("CAP_NET_ADMIN", "CAP_SYS_PTRACE") and o.cap_drop == ("ALL",)


@pytest.mark.parametrize(
    "args, exc",
    [
        ([], UsageError),
        (["--bogus", "busybox"], UsageError),
        (["-z", "busybox"], UsageError),
        (["--name"], UsageError),
        (["--memory", "lots", "busybox"], InvalidArgument),
        (["--memory", "1k", "busybox"], InvalidArgument),
        (["--cpus", "-1", "busybox"], InvalidArgument),
        (["--pids-limit", "many", "busybox"], InvalidArgument),
        (["--restart", "sometimes", "-d", "busybox"], InvalidArgument),
        (["--restart", "always:3", "-d", "busybox"], InvalidArgument),
        (["--restart", "on-failure:x", "-d", "busybox"], InvalidArgument),
        (["--rm", "-d", "--restart", "always", "busybox"], InvalidArgument),
        (["--stop-timeout", "-1", "busybox"], InvalidArgument),
        (["--stop-timeout", "soon", "busybox"], InvalidArgument),
        (["--stop-signal", "SIGNOPE", "busybox"], InvalidArgument),
        (["--cap-add", "SUPERPOWER", "busybox"], InvalidArgument),
        (["--cap-drop", "", "busybox"], InvalidArgument),
        (["-u", "", "busybox"], InvalidArgument),
        (["-u", "bob:", "busybox"], InvalidArgument),
        (["-u", "bad name", "busybox"], InvalidArgument),
        (["-w", "relative", "busybox"], InvalidArgument),
        (["-h", "bad_host!", "busybox"], InvalidArgument),
        (["--name", "-x", "busybox"], UsageError),
        (["--name", "has space", "busybox"], InvalidArgument),
        (["--network", "bad/name", "busybox"], InvalidArgument),
        (["-p", "80:80", "--network", "host", "busybox"], InvalidArgument),
        (["-p", "80:80", "--network", "none", "busybox"], InvalidArgument),
        (["-e", "=x", "busybox"], InvalidArgument),
        (["--log-files", "0", "busybox"], InvalidArgument),
        (["--log-size", "16", "busybox"], InvalidArgument),
        (["--log-opt", "max-size=1k", "busybox"], InvalidArgument),
        (["--log-opt", "compress=true", "busybox"], InvalidArgument),
        (["-v", "/a:/x", "--tmpfs", "/x", "busybox"], InvalidArgument),
        (["--config", "missing.json"], InvalidArgument),
    ],
)
def test_bad_flags_one_line(args, exc):
    with pytest.raises(exc) as e:
        parse(*args)
    assert isinstance(e.value, TcrError)
    assert e.value.message and "\n" not in e.value.message


def test_help():
    with pytest.raises(HelpRequested) as e:
        parse("--help")
    assert "--cap-add" in e.value.text and "IMAGE" in e.value.text


def test_round_trip():
    o = parse(
        "-dit",
        "--name",
        "rt",
        "-e",
        "A=1",
        "-v",
        "/a:/b:ro",
        "--tmpfs",
        "/t:size=1m,exec,mode=700",
        "-p",
        "127.0.0.1:8080:80/udp",
        "--network",
        "net1",
        "--read-only",
        "--restart",
        "on-failure:2",
        "--stop-timeout",
        "4",
        "--stop-signal",
        "HUP",
        "--memory",
        "1g",
        "--cpus",
        "1.5",
        "--pids-limit",
        "9",
        "--cap-add",
        "ALL",
        "--cap-drop",
        "SYS_ADMIN",
        "-u",
        "1000:1000",
        "-w",
        "/w",
        "--entrypoint",
        "",
        "-h",
        "h",
        "--log-size",
        "1m",
        "--log-files",
        "2",
        "busybox:1.36",
        "a",
        "b",
    )
    d = o.to_dict()
    again = RunOptions.from_dict(d)
    assert again == o
    import json

    assert RunOptions.from_dict(json.loads(json.dumps(d))) == o
    assert RunOptions.from_dict(RunOptions().to_dict()) == RunOptions()


# --- the C tool's run config -------------------------------------------------------------------


def sample(name):
    path = os.path.join(SAMPLES, name)
    with open(path) as f:
        return path, f.read()


def test_config_full_sample():
    path, text = sample("full.json")
    o = parse("--config", path, read_file=files({path: text}))
    assert o.image == "docker.io/library/busybox:latest" and o.name == "web-1"
    assert o.detach and o.read_only and not o.tty and not o.rm
    assert o.entrypoint == () and o.command == ("httpd", "-f", "-p", "80")
    assert o.env == ("MY_VAR=hello", "DEBUG=1")
    assert o.volumes == (
        Volume(os.path.join(SAMPLES, "www"), "/var/www", True),
        Volume("/var/lib/web-data", "/data"),
    )
    assert o.tmpfs == (Tmpfs("/tmp", 8 << 20), Tmpfs("/run", 64 << 20))
    assert o.publish == ("8080:80/tcp", "0.0.0.0:5353:53/udp")
    assert o.network == "tcr_default" and o.restart == RestartPolicy("unless-stopped") and o.stop_timeout == 5
    assert o.config_file == path


def test_config_minimal_and_no_network_samples():
    path, text = sample("minimal.json")
    o = parse("--config", path, read_file=files({path: text}))
    assert o.image == "busybox:latest" and o.command == () and o.entrypoint is None
    path, text = sample("no-network.json")
    o = parse("--config", path, read_file=files({path: text}))
    assert o.network == "none" and o.tty and o.rm and o.name == "offline" and o.command == ("sh",)


def test_cli_overrides_config():
    path, text = sample("full.json")
    o = parse(
        "--config",
        path,
        "--name",
        "web-2",
        "-e",
        "DEBUG=0",
        "--stop-timeout",
        "1",
        "-p",
        "9090:90",
        "busybox:other",
        "echo",
        "hi",
        read_file=files({path: text}),
    )
    assert o.name == "web-2" and o.image == "busybox:other" and o.stop_timeout == 1
    assert o.env == ("MY_VAR=hello", "DEBUG=1", "DEBUG=0")
    assert o.publish[-1] == "9090:90" and len(o.publish) == 3
    # COMMAND on the line replaces the config's argv and the image entrypoint applies again
    assert o.command == ("echo", "hi") and o.entrypoint is None


def test_config_relative_to_pwd():
    o = parse(
        "--config",
        "cfg/run.json",
        pwd="/srv",
        read_file=files(
            {"/srv/cfg/run.json": '{"image": "b","mounts": [{"source": "d", "destination": "/d"}]}'}
        ),
    )
    assert o.volumes == (Volume("/srv/cfg/d", "/d"),)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[]", "JSON object"),
        ("{", "not valid JSON"),
        ("{}", "'image' is required"),
        ('{"image": 1}', "must be a string"),
        ('{"image": "b", "extra": 1}', "unknown key 'extra'"),
        ('{"image": "b", "detached": "yes"}', "must be a boolean"),
        ('{"image": "b", "command": []}', "must not be empty"),
        ('{"image": "b", "command": "sh"}', "must be an array"),
        ('{"image": "b", "env": {"A": 1}}', "must be a string"),
        ('{"image": "b", "mounts": [{"source": "/a"}]}', "mounts\\[0\\]"),
        ('{"image": "b", "mounts": [{"source": "/a", "destination": "rel"}]}', "absolute"),
        ('{"image": "b", "tmpfs": [{"destination": "/t", "size": -1}]}', "size"),
        ('{"image": "b", "ports": [{"hostPort": 0, "containerPort": 80}]}', "1-65535"),
        ('{"image": "b", "ports": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}', "protocol"),
        ('{"image": "b", "network": "n", "noNetwork": true}', "mutually exclusive"),
        ('{"image": "b", "restartPolicy": "on-failure"}', "restartPolicy"),
        ('{"image": "b", "stopTimeout": true}', "must be an integer"),
    ],
)
def test_bad_run_configs(text, match):
    with pytest.raises(InvalidArgument, match=match) as e:
        parse("--config", "/c.json", read_file=files({"/c.json": text}))
    assert "\n" not in e.value.message


def test_run_allows_restart_without_detach():
    """tcrd supervises foreground runs too (issue 13): --restart needs no -d."""
    assert parse("--restart", "always", "busybox").restart == RestartPolicy("always")


def test_create_allows_restart_without_detach():
    o = parse_run_args(["--restart", "always", "busybox"], "/", files({}), prog="create")
    assert o.restart == RestartPolicy("always") and not o.detach
    with pytest.raises(UsageError, match="tcr create: unknown flag: --nope"):
        parse_run_args(["--nope", "busybox"], "/", files({}), prog="create")


def test_network_alias():
    from tcr.common.errors import InvalidArgument

    o = parse_run_args(["--network-alias", "db", "--network-alias=db", "--network-alias", "cache", "img"],
                       "/")
    assert o.network_aliases == ("db", "cache") and RunOptions.from_dict(o.to_dict()) == o
    for bad in (["--network-alias", "a b"], ["--network", "host", "--network-alias", "db"]):
        with pytest.raises(InvalidArgument):
            parse_run_args([*bad, "img"], "/")


def test_several_networks():
    """docker 25's `run --network A --network B`: the first is the primary, the others are
    connected too at start; with host/none, or a repeat, it is refused."""
    o = parse("--network", "front", "--net", "back", "--network-alias", "web", "busybox")
    assert (o.network, o.extra_networks, o.network_aliases) == ("front", ("back",), ("web",))
    assert RunOptions.from_dict(o.to_dict()) == o
    from tcr.containers.record import Endpoint, endpoints_from_options

    assert endpoints_from_options(o.to_dict()) == (Endpoint("front", ("web",)), Endpoint("back", ("web",)))
    assert parse("--network", "bridge", "busybox").extra_networks == ()
    with pytest.raises(InvalidArgument, match="conflicting options"):
        parse("--network", "host", "--network", "front", "busybox")
    with pytest.raises(InvalidArgument, match="specified multiple times"):
        parse("--network", "front", "--network", "front", "busybox")


# ---- the record the worker sends back: parse -> to_dict -> JSON -> from_dict == parse ----------
# tcrd parses run/create flags in a forked worker (tcr.commands.containers._with_options) and
# rebuilds the record from its JSON reply: anything the parser produces must survive that.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_word = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8).filter(lambda s: s[0].isalnum())
_path = st.lists(_word, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
_any = st.text(max_size=12)  # any text, non-ASCII and surrogates included (the client's argv)
_FLAG_VALUES = {
    "-e": st.builds(lambda k, v: f"{k}={v}", _word, _any),
    "-v": st.one_of(st.builds(lambda s, d, m: f"{s}:{d}{m}", _path, _path,
                              st.sampled_from(["", ":ro", ":rw"])),
                    st.builds(lambda n, d: f"{n}:{d}", _word, _path), _path),
    "--mount": st.one_of(
        st.builds(lambda s, d: f"type=bind,source={s},target={d},readonly", _path, _path),
        st.builds(lambda d, z: f"type=tmpfs,target={d},tmpfs-size={z}k,tmpfs-mode=1777", _path,
                  st.integers(1, 9999)),
        st.builds(lambda n, d: f"type=volume,src={n},dst={d}", _word, _path)),
    "--tmpfs": st.builds(lambda d, o: f"{d}{o}", _path,
                         st.sampled_from(["", ":size=1m", ":exec,mode=700", ":ro", ":12345"])),
    "-p": st.sampled_from(["80", "8080:80", "127.0.0.1:53:53/udp", "1000-1001:2000-2001"]),
    "--network": st.sampled_from(["none", "host", "bridge", "front", "back"]),
    "--restart": st.sampled_from(["no", "always", "on-failure:3", "unless-stopped"]),
    "--stop-timeout": st.integers(0, 999).map(str),
    "--stop-signal": st.sampled_from(["TERM", "9", "sigusr1"]),
    "-m": st.sampled_from(["64m", "1g", "16777216"]),
    "--cpus": st.sampled_from(["0.5", "2", "1.25"]),
    "--pids-limit": st.sampled_from(["-1", "100"]),
    "--cap-add": st.sampled_from(["NET_ADMIN", "cap_sys_time", "ALL"]),
    "--cap-drop": st.sampled_from(["CHOWN", "ALL"]),
    "-u": st.sampled_from(["1000", "1000:1000", "www:video"]),
    "-w": _path,
    "--entrypoint": st.sampled_from(["", "/bin/sh", "tini"]),
    "-h": _word,
    "--name": _word,
    "--log-opt": st.sampled_from(["max-size=10k", "max-file=3"]),
    "--log-driver": st.sampled_from(["json-file", "syslog", "none"]),
    "--device": st.sampled_from(["/dev/null", "/dev/ttyUSB0:/dev/modem:rw", "/dev/i2c-1:r"]),
    "--device-cgroup-rule": st.sampled_from(["c 189:* rwm", "b 8:0 r"]),
    "--group-add": st.sampled_from(["20", "dialout"]),
    "--add-host": st.sampled_from(["db:10.0.0.5", "v6:[::1]"]),
    "--dns": st.sampled_from(["10.0.0.1", "::1"]),
    "--dns-search": _word,
    "--dns-option": st.sampled_from(["ndots:2", "rotate"]),
    "--ulimit": st.sampled_from(["nofile=100:200", "core=-1", "nproc=10"]),
    "-l": st.builds(lambda k, v: f"{k}={v}", _word, _any),
    "--sysctl": st.sampled_from(["net.ipv4.ip_forward=1", "kernel.shmmax=1000"]),
    "--shm-size": st.sampled_from(["1m", "65536"]),
    "--health-cmd": _any.filter(lambda s: s.strip()),
    "--health-interval": st.sampled_from(["1s", "90s", "1m30s"]),
    "--health-retries": st.sampled_from(["1", "5"]),
    "--network-alias": _word,
}
_SWITCHES = ["-d", "-i", "-t", "--rm", "--read-only", "--init", "--privileged", "-P", "--no-healthcheck"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(sorted(_FLAG_VALUES)).flatmap(
           lambda f: st.tuples(st.just(f), _FLAG_VALUES[f])), max_size=10),
       st.lists(st.sampled_from(_SWITCHES), max_size=4),
       st.lists(_any, max_size=3),
       st.sampled_from(["run", "create"]),
       st.booleans())
def test_what_the_parser_produces_survives_the_workers_json(pairs, switches, command, prog, with_config):
    from tcr.common import jsonc

    argv = [x for f, v in pairs for x in (f, v)] + switches
    config = {"/home/u/run.json": '{"image": "cfgimg", "env": {"A": "1"}, '
                                  '"mounts": [{"source": "d", "destination": "/d", "readonly": true}], '
                                  '"tmpfs": [{"destination": "/t"}], "restartPolicy": "always", '
                                  '"ports": [{"hostPort": 81, "containerPort": 80}], '
                                  '"stopTimeout": 3, "command": ["/bin/sh", "-c", "x"]}',
              "/home/u/env": "B=2\n# c\nC=\n", "/home/u/labels": "k=v\nz=\n"}
    if with_config:
        argv += ["--config", "run.json", "--env-file", "env", "--label-file", "labels"]
    try:
        o = parse_run_args(argv + ["img", *command], "/home/u", files(config), prog=prog)
    except TcrError:
        return
    wire = jsonc.loads(jsonc.dumps({"ok": {"opts": o.to_dict()}}, ascii=True))  # the worker's reply
    assert RunOptions.from_dict(wire["ok"]["opts"]) == o
