"""tcr compose without root: the file's validation (unknown keys refused with their path), the
normalized project, `tcr run` arguments and config hashes, and the pure up/down plans."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.compose import plan, spec
from tcr.compose.spec import ComposeError

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "compose")
STACK = os.path.join(SAMPLES, "stack.yaml")


def norm(doc, name="proj", env=None, readers=None):
    def reader(path):
        if readers and path in readers:
            return readers[path]
        raise ComposeError(f"{path}: no such file")

    return spec.normalize(doc, "/srv/app", name, env or {}, reader)


def two(**web):
    svc = {"image": "busybox", "command": "sleep 100"}
    svc.update(web)
    return {"services": {"web": svc, "db": {"image": "busybox:db", "command": ["sleep", "100"]}}}


# ---- the file -----------------------------------------------------------------------------------


def test_sample_stack_normalizes_every_supported_key():
    p = spec.load(STACK, environ={})
    assert p["name"] == "board"
    api = p["services"]["api"]
    assert api["entrypoint"] == ["/usr/bin/api"] and api["command"] == ["serve", "--port", "8080"]
    assert api["environment"] == {"LOG_LEVEL": "info", "DEBUG": "false", "API_TOKEN": "abc", "QUOTED": "x y"}
    assert api["ports"] == ["127.0.0.1:8080:8080", "9090:9090/udp"]
    assert api["volumes"][1] == {"type": "bind", "source": os.path.join(SAMPLES, "config"),
                                 "target": "/etc/api",
                                 "read_only": True}
    assert api["depends_on"] == {"db": "service_healthy"}
    assert p["services"]["db"]["healthcheck"] == {"test": ["CMD-SHELL", "db-ping || exit 1"],
                                                  "interval": 90.0,
                                                  "timeout": 5.0, "retries": 4, "start_period": 10.0}
    assert p["networks"] == {"backend": {"name": "board_backend", "external": False, "labels": {},
                                         "subnet": "10.99.0.0/24"}}
    assert p["volumes"]["data"]["name"] == "board_data"
    assert spec.order(p["services"]) == ["db", "api"]


def test_json_always_works_without_yaml(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_yaml(name, *a, **k):
        if name == "yaml":
            raise ImportError("no yaml")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    f = tmp_path / "compose.json"
    f.write_text(json.dumps(two()))
    assert sorted(spec.load(str(f), environ={})["services"]) == ["db", "web"]
    y = tmp_path / "compose.yaml"
    y.write_text("services: {}\n")
    with pytest.raises(ComposeError, match="YAML needs PyYAML"):
        spec.load(str(y), environ={})


@pytest.mark.parametrize("doc,path", [
    ({"services": {"web": {"image": "x", "build": "."}}}, "services.web.build"),
    ({"services": {"web": {"image": "x"}}, "secrets": {}}, "secrets"),
    ({"services": {"web": {"image": "x", "healthcheck": {"test": "true", "start_interval": "1s"}}}},
     "services.web.healthcheck.start_interval"),
    ({"services": {"web": {"image": "x", "ports": [{"target": 80, "app_protocol": "http"}]}}},
     "services.web.ports[0].app_protocol"),
    ({"services": {"web": {"image": "x", "networks": {"n": {"aliases": ["a"]}}}}, "networks": {"n": None}},
     "services.web.networks.n.aliases"),
    ({"services": {"web": {"image": "x"}}, "networks": {"n": {"attachable": True}}}, "networks.n.attachable"),
    ({"services": {"web": {"image": "x"}}, "volumes": {"v": {"driver_opts": {}}}}, "volumes.v.driver_opts"),
    ({"services": {"web": {"image": "x", "deploy": {"replicas": 2}}}}, "services.web.deploy"),
])
def test_unknown_keys_are_refused_with_their_path(doc, path):
    with pytest.raises(ComposeError) as e:
        norm(doc)
    assert e.value.message.startswith(path + ":"), e.value.message
    assert "\n" not in e.value.message


@pytest.mark.parametrize("doc,needle", [
    ({}, "no services"),
    ({"services": {"web": {"command": "x"}}}, "needs image"),
    ({"services": {"web": {"image": "x", "depends_on": ["nope"]}}}, "'nope' is not defined"),
    ({"services": {"a": {"image": "x", "depends_on": ["b"]}, "b": {"image": "x", "depends_on": ["a"]}}},
     "dependency cycle"),
    ({"services": {"web": {"image": "x", "depends_on": {"db": {"condition": "service_healthy"}}},
                   "db": {"image": "x"}}}, "no healthcheck"),
    ({"services": {"web": {"image": "x",
                           "depends_on": {"db": {"condition": "service_completed_successfully"}}},
                   "db": {"image": "x"}}}, "not supported"),
    ({"services": {"web": {"image": "x", "volumes": ["undeclared:/d"]}}}, "not declared"),
    ({"services": {"web": {"image": "x", "volumes": ["/d"]}}}, "anonymous volumes"),
    ({"services": {"web": {"image": "x", "restart": "sometimes"}}}, "invalid policy"),
    ({"services": {"web": {"image": "x", "healthcheck": {"interval": "soon"}}}}, "invalid duration"),
    ({"services": {"web": {"image": "x", "labels": {"com.docker.compose.service": "y"}}}}, "reserved"),
    ({"services": {"web": {"image": "x", "pids_limit": "many"}}}, "must be an integer"),
    ({"services": {"web": {"image": "x", "working_dir": "rel"}}}, "absolute"),
    ({"services": {"web": {"image": "x"}}, "networks": {"n": {"driver": "macvlan"}}}, "not supported"),
    ({"services": ["web"]}, "no services"),
    ({"services": {"web": "x"}}, "must be a mapping"),
])
def test_invalid_files_are_one_line_errors(doc, needle):
    with pytest.raises(ComposeError) as e:
        norm(doc)
    assert needle in e.value.message and "\n" not in e.value.message


def test_interpolation():
    env = {"TAG": "1.2", "EMPTY": ""}
    cmd = "echo $$HOME ${EMPTY:-dflt} ${EMPTY-kept} $TAG"
    doc = {"services": {"web": {"image": "img:${TAG}", "command": cmd}}}
    s = norm(spec.interpolate(doc, env))["services"]["web"]
    assert s["image"] == "img:1.2" and s["command"] == ["echo", "$HOME", "dflt", "1.2"]
    with pytest.raises(ComposeError, match="services.web.image: variable NEED is required: set it"):
        spec.interpolate({"services": {"web": {"image": "${NEED:?set it}"}}}, {})
    with pytest.raises(ComposeError, match="invalid interpolation"):
        spec.interpolate({"x": "${a b}"}, {})


def test_environment_forms_and_env_file_order():
    doc = two(environment=["A=1", "FROM_SHELL", "UNSET"], env_file=["a.env"])
    p = norm(doc, env={"FROM_SHELL": "sh"}, readers={"/srv/app/a.env": {"A": "0", "B": "2"}})
    s = p["services"]["web"]
    assert s["environment"] == {"A": "1", "B": "2", "FROM_SHELL": "sh"}


def test_project_name_rules():
    assert norm(two(), name=None)["name"] == "app"  # the directory of the file
    assert norm({**two(), "name": "Named"}, name=None)["name"] == "named"
    assert norm(two(), name=None, env={"COMPOSE_PROJECT_NAME": "envp"})["name"] == "envp"
    with pytest.raises(ComposeError):
        spec.project_name_from("!!!")


def test_env_file_parser(tmp_path):
    f = tmp_path / "x.env"
    f.write_text("# c\nexport A=1\nB='two words'\n\nC=\n")
    assert spec.read_env_file(str(f)) == {"A": "1", "B": "two words", "C": ""}
    f.write_text("not a pair\n")
    with pytest.raises(ComposeError, match=":1: expected KEY=VALUE"):
        spec.read_env_file(str(f))


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                    lambda c: st.one_of(st.lists(c, max_size=4),
                                        st.dictionaries(st.sampled_from(
                                            ["services", "web", "image", "ports", "volumes", "networks",
                                             "depends_on", "healthcheck", "test", "environment", "command",
                                             "x", "labels", "restart", "volumes"]), c, max_size=4)),
                    max_leaves=20))
def test_validation_never_crashes(doc):
    """Any document: a normalized project or a ComposeError, nothing else."""
    try:
        norm(doc)
    except ComposeError:
        pass


# ---- run arguments and hashes --------------------------------------------------------------------


def test_run_args():
    p = spec.load(STACK, environ={})
    a = plan.run_args(p, "api", "/x/compose.yaml")
    i = a.index("example/api:1.0")
    assert a[:2] == ["-d", "--name=board-api-1"]
    assert a[i + 1:] == ["serve", "--port", "8080"]
    flags = a[:i]
    for want in ["--network=board_backend", "--env=API_TOKEN=abc", "--publish=127.0.0.1:8080:8080",
                 "--publish=9090:9090/udp", "--volume=board_data:/var/lib/api",
                 f"--volume={os.path.join(SAMPLES, 'config')}:/etc/api:ro", "--device=/dev/ttyS1:/dev/ttyS1",
                 "--tmpfs=/run", "--restart=unless-stopped", "--user=1000:1000", "--workdir=/srv",
                 "--read-only", "--cap-add=NET_ADMIN", "--cap-drop=ALL", "--memory=64m", "--cpus=0.5",
                 "--pids-limit=100", "--label=com.example.role=api", "--entrypoint=/usr/bin/api",
                 "--label=com.docker.compose.project=board", "--label=com.docker.compose.service=api",
                 "--label=com.docker.compose.project.config_files=/x/compose.yaml"]:
        assert want in flags, want
    db = plan.run_args(p, "db")
    assert "--health-cmd=db-ping || exit 1" in db and "--health-interval=90s" in db
    assert "--health-start-period=10s" in db and "--health-retries=4" in db


def test_entrypoint_list_and_clear():
    p = norm(two(entrypoint=["/bin/sh", "-c"], command="echo hi"))
    a = plan.service_args(p, "web")
    assert "--entrypoint=/bin/sh" in a and a[-3:] == ["-c", "echo", "hi"]
    p = norm(two(entrypoint=[]))
    assert "--entrypoint=" in plan.service_args(p, "web")


def test_hash_changes_only_with_what_reaches_the_container():
    base = norm(two())
    h = plan.config_hash(plan.service_args(base, "web"))
    assert h == plan.config_hash(plan.service_args(norm(two()), "web"))
    assert h == plan.config_hash(plan.service_args(norm(two(**{"x-doc": "ignored"})), "web"))
    for change in ({"image": "busybox:2"}, {"command": "sleep 5"}, {"environment": {"A": "1"}},
                   {"ports": ["80:80"]}, {"restart": "always"}, {"labels": ["a=b"]}):
        assert plan.config_hash(plan.service_args(norm(two(**change)), "web")) != h, change
    db = plan.config_hash(plan.service_args(base, "db"))
    assert db == plan.config_hash(plan.service_args(norm(two(image="other")), "db"))


# ---- plans ---------------------------------------------------------------------------------------


def ctr(p, svc, state="running", **kw):
    known = svc in p["services"]
    d = {"name": plan.container_name(p["name"], svc), "service": svc, "state": state,
         "hash": plan.config_hash(plan.service_args(p, svc)) if known else "old", "image_id": "i1"}
    d.update(kw)
    return d


def actions(steps, kind="service"):
    return {s["name"]: s["action"] for s in steps if s["kind"] == kind}


def test_plan_first_up_creates_everything_in_order():
    p = norm(two(depends_on=["db"]))
    steps = plan.plan_up(p, [], [], [])
    assert [(s["kind"], s["name"], s["action"]) for s in steps] == [
        ("network", "default", "create"), ("service", "db", "create"), ("service", "web", "create")]
    assert plan.changed(steps)


def test_plan_second_up_changes_nothing():
    p = norm(two())
    steps = plan.plan_up(p, [ctr(p, "web"), ctr(p, "db")], ["proj_default"], [], {"busybox": "i1"})
    assert actions(steps) == {"web": "keep", "db": "keep"}
    assert actions(steps, "network") == {"default": "keep"}
    assert not plan.changed(steps)
    assert "keep" in plan.render(steps)


def test_plan_changed_service_only_is_recreated():
    old = norm(two())
    new = norm(two(image="busybox:2"))
    steps = plan.plan_up(new, [ctr(old, "web"), ctr(old, "db")], ["proj_default"], [])
    assert actions(steps) == {"web": "recreate", "db": "keep"}


def test_plan_retagged_image_recreates():
    p = norm(two())
    steps = plan.plan_up(p, [ctr(p, "web"), ctr(p, "db")], ["proj_default"], [], {"busybox": "i2"})
    assert actions(steps) == {"web": "recreate", "db": "keep"}
    assert "image busybox changed" in plan.render(steps)


def test_plan_stopped_container_is_started_and_orphans():
    p = norm(two())
    cs = [ctr(p, "web", state="exited"), ctr(p, "db"), ctr(p, "old")]
    steps = plan.plan_up(p, cs, ["proj_default"], [])
    assert actions(steps) == {"web": "start", "db": "keep", "old": "orphan"} and plan.changed(steps)
    steps = plan.plan_up(p, cs, ["proj_default"], [], remove_orphans=True)
    assert actions(steps)["old"] == "remove"


def test_plan_up_services_brings_their_dependencies():
    p = norm({"services": {"a": {"image": "x"}, "b": {"image": "x", "depends_on": ["a"]},
                           "c": {"image": "x"}}})
    assert actions(plan.plan_up(p, [], [], [], services=["b"])) == {"a": "create", "b": "create"}
    with pytest.raises(ComposeError):
        plan.plan_up(p, [], [], [], services=["zz"])


def test_plan_external_network_missing_and_force_recreate():
    p = norm({"services": {"w": {"image": "x", "networks": ["ext"]}}, "networks": {"ext": {"external": True,
                                                                                          "name": "lan"}}})
    assert actions(plan.plan_up(p, [], [], []), "network") == {"ext": "missing"}
    assert actions(plan.plan_up(p, [], ["lan"], []), "network") == {"ext": "keep"}
    assert actions(plan.plan_up(p, [ctr(p, "w")], ["lan"], [], force_recreate=True)) == {"w": "recreate"}


def test_plan_down():
    p = norm(two(depends_on=["db"]))
    cs = [ctr(p, "db"), ctr(p, "web"), ctr(p, "gone")]
    nets = [{"name": "proj_default", "labels": {plan.L_PROJECT: "proj", plan.L_NETWORK: "default"}},
            {"name": "other", "labels": {}}]
    vols = [{"name": "proj_data", "labels": {plan.L_PROJECT: "proj", plan.L_VOLUME: "data"}},
            {"name": "keep", "labels": {plan.L_PROJECT: "elsewhere"}}]
    steps = plan.plan_down("proj", cs, nets, vols, remove_volumes=True, project=p)
    assert [(s["kind"], s["target"], s["action"]) for s in steps] == [
        ("service", "proj-web-1", "remove"), ("service", "proj-db-1", "remove"),
        ("service", "proj-gone-1", "orphan"), ("network", "proj_default", "remove"),
        ("volume", "proj_data", "remove")]
    steps = plan.plan_down("proj", cs, nets, vols)  # no file: every container of the project goes
    assert [s["action"] for s in steps if s["kind"] == "service"] == ["remove"] * 3
    assert not [s for s in steps if s["kind"] == "volume"]


def test_yaml_found_by_the_installed_client_that_skips_site(tmp_path):
    """`make install`'s tcr runs as `python3 -IS`: compose still finds a system PyYAML."""
    import subprocess
    import sys

    pytest.importorskip("yaml")
    f = tmp_path / "compose.yaml"
    f.write_text("services:\n  web:\n    image: busybox\n")
    target = os.path.join(os.path.dirname(os.path.dirname(SAMPLES)), "..", "target")
    code = (f"import sys; sys.path.insert(0, {os.path.abspath(target)!r}); "
            f"from tcr.compose import spec; print(sorted(spec.load({str(f)!r}, environ={{}})['services']))")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['web']"


def test_a_service_on_several_networks():
    """More than one network per service: `run --network A --network B` (the first is the
    primary); the service name is an alias on each; a change of the list changes the hash."""
    doc = {"services": {"web": {"image": "x", "networks": ["front", "back"]}},
           "networks": {"front": None, "back": None}}
    p = norm(doc)
    a = plan.service_args(p, "web")
    nets = [x for x in a if x.startswith("--network=")]
    assert nets == [f"--network={p['networks'][n]['name']}" for n in ("front", "back")]
    assert "--network-alias=web" in a
    one = norm({"services": {"web": {"image": "x", "networks": ["front"]}}, "networks": {"front": None}})
    assert plan.config_hash(plan.service_args(one, "web")) != plan.config_hash(a)
