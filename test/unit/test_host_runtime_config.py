"""config.json generation from an image config (pure)."""

import pytest

from tcr.common.errors import InvalidArgument
from tcr_host.runtime_config import User, resolve_user, runtime_config

PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n# c\nbad line\n"
GROUP = b"root:x:0:\napp:x:1001:\nvideo:x:44:app,other\naudio:x:29:app\nstaff:x:50:other\n"


@pytest.mark.parametrize("spec,want", [
    ("", User(0, 0, (), "/root")),
    ("root", User(0, 0, (), "/root")),
    ("app", User(1000, 1001, (29, 44), "/home/app")),
    ("1000", User(1000, 1001, (29, 44), "/home/app")),
    ("app:video", User(1000, 44, (), "/home/app")),
    ("1000:50", User(1000, 50, (), "/home/app")),
    ("4242", User(4242, 0, (), None)),
    ("4242:4243", User(4242, 4243, (), None)),
    ("0:audio", User(0, 29, (), "/root")),
])
def test_resolve_user(spec, want):
    assert resolve_user(spec, PASSWD, GROUP) == want


def test_unknown_names_are_errors():
    with pytest.raises(InvalidArgument, match="'nobody'"):
        resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(InvalidArgument, match="no /etc/passwd"):
        resolve_user("app", None, None)
    with pytest.raises(InvalidArgument, match="'wheel'"):
        resolve_user("app:wheel", PASSWD, GROUP)
    assert resolve_user("7:8", None, None) == User(7, 8)


IMAGE = {"architecture": "arm64", "os": "linux", "created": "2024-01-01T00:00:00Z",
         "config": {"Entrypoint": ["/entry"], "Cmd": ["--serve", "x"], "Env": ["PATH=/opt/bin", "A=1"],
                    "WorkingDir": "/srv", "User": "app", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                    "StopSignal": "SIGQUIT", "Labels": {"org.example": "yes"}}}


def test_runtime_config_from_image():
    c = runtime_config(IMAGE, PASSWD, GROUP)
    p = c["process"]
    assert p["args"] == ["/entry", "--serve", "x"]
    assert p["env"] == ["PATH=/opt/bin", "TERM=xterm", "A=1", "HOME=/home/app"]
    assert p["cwd"] == "/srv"
    assert p["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [29, 44]}
    assert c["root"] == {"path": "rootfs"}
    assert {m["destination"] for m in c["mounts"]} >= {"/proc", "/dev", "/dev/pts", "/sys"}
    assert [n["type"] for n in c["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    a = c["annotations"]
    assert a["org.opencontainers.image.exposedPorts"] == "53/udp,80/tcp"
    assert a["org.opencontainers.image.stopSignal"] == "SIGQUIT"
    assert a["org.opencontainers.image.architecture"] == "arm64" and a["org.example"] == "yes"
    # Entrypoint and Cmd stay apart for the device's --entrypoint/COMMAND rules
    assert a["org.tcr.image.entrypoint"] == '["/entry"]'
    assert a["org.tcr.image.cmd"] == '["--serve", "x"]'
    assert c["ociVersion"].startswith("1.")


def test_runtime_config_defaults_like_umoci():
    c = runtime_config({"architecture": "amd64", "os": "linux"})
    p = c["process"]
    assert p["args"] == ["sh"] and p["cwd"] == "/" and p["user"] == {"uid": 0, "gid": 0}
    assert p["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]


def test_runtime_config_is_pure_and_fresh():
    a = runtime_config(IMAGE, PASSWD, GROUP)
    a["mounts"][0]["destination"] = "/changed"
    assert runtime_config(IMAGE, PASSWD, GROUP)["mounts"][0]["destination"] == "/proc"


def test_malformed_image_config():
    with pytest.raises(InvalidArgument):
        runtime_config({"config": {"Cmd": "not a list"}})
    with pytest.raises(InvalidArgument):
        runtime_config({"config": {"User": 5}})


def test_image_healthcheck_reaches_the_device_as_an_annotation():
    import json

    from tcr.containers import healthcfg

    hc = {"Test": ["CMD-SHELL", "wget -q -O- localhost"], "Interval": 5_000_000_000, "Retries": 2}
    cfg = runtime_config({"config": {"Cmd": ["httpd"], "Healthcheck": hc}})
    ann = json.loads(cfg["annotations"]["org.tcr.image.healthcheck"])
    assert ann == hc
    assert healthcfg.effective(None, healthcfg.from_image(ann))["interval"] == 5.0
    assert "org.tcr.image.healthcheck" not in runtime_config({"config": {"Cmd": ["x"]}})["annotations"]
