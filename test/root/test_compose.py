"""`tcr compose` on a real tcrd: up is idempotent and minimal, the stack survives a tcrd restart,
service_healthy waits for a real health check, down removes what up made."""

import json
import os

import pytest

from test.root.test_containers_image import build

pytestmark = pytest.mark.root

STACK = """
name: {project}
services:
  db:
    image: busybox:latest
    command: ["sh", "-c", "touch /tmp/up; exec sleep 1000"]
    restart: always
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/up"]
      interval: 200ms
      retries: 3
    volumes: [data:/data]
    labels: {{role: db}}
  web:
    image: busybox:{tag}
    command: sleep 1000
    restart: always
    environment: {{MODE: "${{MODE:-prod}}"}}
    depends_on:
      db: {{condition: service_healthy}}
volumes:
  data: {{}}
"""


@pytest.fixture
def d(tcrd, tmp_path):
    for name, tag in (("v1.sqfs", "latest"), ("v2.sqfs", "v2")):
        r = tcrd.cli("image", "load", build(str(tmp_path), name=name, tag=tag, variant=tag))
        assert r.returncode == 0, r.stderr
    yield tcrd
    ids = tcrd.cli("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        tcrd.cli("rm", "-f", *ids)
    for n in tcrd.cli("network", "ls", "-q").stdout.split():
        if n.startswith("tcrtest"):
            tcrd.cli("network", "rm", n)
    for v in tcrd.cli("volume", "ls", "-q").stdout.split():
        if v.startswith("tcrtest"):
            tcrd.cli("volume", "rm", v)


def write(tmp_path, tag="latest", project="tcrtest", extra=""):
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(project=project, tag=tag) + extra)
    return str(f)


def compose(d, f, *args):
    return d.cli("compose", "-f", f, *args)


def up_json(d, f, *args):
    r = compose(d, f, "up", "-d", "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def ids(d):
    r = d.cli("ps", "-a", "--filter", "label=com.docker.compose.project=tcrtest", "--format",
              "{{.Names}} {{.Id}} {{.State}}")
    return {line.split()[0]: (line.split()[1], line.split()[2]) for line in r.stdout.splitlines()}


def actions(out):
    return {(s["kind"], s["name"]): s["action"] for s in out["steps"]}


def test_up_is_idempotent_minimal_and_down_removes_it(d, tmp_path):
    f = write(tmp_path)
    first = up_json(d, f)
    assert first["changed"]
    assert actions(first) == {("network", "default"): "create", ("volume", "data"): "create",
                              ("service", "db"): "create", ("service", "web"): "create"}
    before = ids(d)
    assert {n: s for n, (_, s) in before.items()} == {"tcrtest-db-1": "running", "tcrtest-web-1": "running"}
    ins = json.loads(d.cli("inspect", "tcrtest-web-1").stdout)[0]
    labels = ins["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == "tcrtest" and labels["com.docker.compose.service"] == "web"
    assert len(labels["com.docker.compose.config-hash"]) == 64 and "MODE=prod" in ins["Config"]["Env"]
    assert json.loads(d.cli("inspect", "tcrtest-db-1").stdout)[0]["State"]["Health"]["Status"] == "healthy"
    hosts = d.cli("exec", "tcrtest-web-1", "cat", "/etc/hosts").stdout  # the service name resolves
    assert any(line.split()[1:] and "db" in line.split()[1:] and "tcrtest-db-1" in line.split()
               for line in hosts.splitlines()), hosts

    second = up_json(d, f)  # nothing changed: nothing done
    assert not second["changed"] and set(actions(second).values()) == {"keep"}
    assert ids(d) == before

    f2 = write(tmp_path, tag="v2")
    dry = compose(d, f2, "--dry-run", "up", "-d")
    assert dry.returncode == 0, dry.stderr
    assert "recreate  service web" in dry.stdout and "keep      service db" in dry.stdout
    assert ids(d) == before  # a dry run changes nothing

    third = up_json(d, f2)  # a changed image tag recreates exactly that service
    assert [k for k, v in actions(third).items() if v != "keep"] == [("service", "web")]
    after = ids(d)
    assert after["tcrtest-db-1"] == before["tcrtest-db-1"]
    assert after["tcrtest-web-1"][0] != before["tcrtest-web-1"][0] and after["tcrtest-web-1"][1] == "running"

    ps = compose(d, f2, "ps")
    assert ps.returncode == 0 and "tcrtest-web-1" in ps.stdout and "tcrtest-db-1" in ps.stdout
    assert "(healthy)" in ps.stdout
    assert compose(d, f2, "ps", "-q", "db").stdout.split() == [after["tcrtest-db-1"][0][:12]]

    down = compose(d, f2, "down", "-v")
    assert down.returncode == 0, down.stderr
    assert ids(d) == {}
    assert "tcrtest_default" not in d.cli("network", "ls", "-q").stdout.split()
    assert "tcrtest_data" not in d.cli("volume", "ls", "-q").stdout.split()


def test_stack_survives_tcrd_restart_and_ps_without_file(d, tmp_path):
    f = write(tmp_path)
    up_json(d, f)
    before = ids(d)
    d.restart()  # like a reboot: tcrd stops everything, restart: always brings it back
    from test.fixtures.process import wait_for

    wait_for(lambda: {s for _, s in ids(d).values()} == {"running"}, what=lambda: ids(d))
    assert {n: i for n, (i, _) in ids(d).items()} == {n: i for n, (i, _) in before.items()}
    assert not up_json(d, f)["changed"]
    ps = d.cli("compose", "-p", "tcrtest", "ps", "--format", "{{.Names}}", cwd=str(tmp_path.parent))
    assert sorted(ps.stdout.split()) == ["tcrtest-db-1", "tcrtest-web-1"]
    assert compose(d, f, "down").returncode == 0


def test_orphans_and_stopped_services(d, tmp_path):
    f = write(tmp_path)
    up_json(d, f)
    assert d.cli("stop", "-t", "1", "tcrtest-web-1").returncode == 0
    again = up_json(d, f)
    assert actions(again)[("service", "web")] == "start" and ids(d)["tcrtest-web-1"][1] == "running"
    only_db = tmp_path / "db.yaml"
    text = STACK.format(project="tcrtest", tag="latest")
    only_db.write_text(text.split("  web:")[0] + "volumes:\n  data: {}\n")
    out = up_json(d, str(only_db))
    assert actions(out)[("service", "web")] == "orphan" and "tcrtest-web-1" in ids(d)
    out = up_json(d, str(only_db), "--remove-orphans")
    assert actions(out)[("service", "web")] == "remove" and "tcrtest-web-1" not in ids(d)
    assert compose(d, str(only_db), "down", "-v").returncode == 0


def test_logs(d, tmp_path):
    f = tmp_path / "logs.yaml"
    f.write_text("name: tcrtest\nservices:\n  a:\n    image: busybox\n    command: echo hello-a\n"
                 "  b:\n    image: busybox\n    command: [sh, -c, 'echo hello-b; echo oops >&2']\n")
    assert compose(d, str(f), "up", "-d").returncode == 0
    from test.fixtures.process import wait_for

    wait_for(lambda: {s for _, s in ids(d).values()} == {"exited"}, what=lambda: ids(d))
    r = compose(d, str(f), "logs")
    assert r.returncode == 0, r.stderr
    assert "tcrtest-a-1  | hello-a" in r.stdout and "tcrtest-b-1  | hello-b" in r.stdout
    assert "tcrtest-b-1  | oops" in r.stdout + r.stderr  # stderr apart where tcr logs keeps it apart
    r = compose(d, str(f), "logs", "--follow", "a")  # an exited container: follow ends at once
    assert r.returncode == 0 and "hello-a" in r.stdout and "hello-b" not in r.stdout
    assert compose(d, str(f), "down").returncode == 0
    r = compose(d, str(f), "up")  # attached: follows the logs until the services exit
    assert r.returncode == 0, r.stderr
    assert "tcrtest-a-1  | hello-a" in r.stdout and "tcrtest-b-1  | hello-b" in r.stdout
    assert compose(d, str(f), "down").returncode == 0


def test_bad_files_change_nothing(d, tmp_path):
    f = write(tmp_path, extra="secrets: {}\n")
    r = compose(d, f, "up", "-d")
    assert r.returncode == 1 and r.stderr.startswith("tcr: compose.yaml: secrets: not supported by tcr")
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  web:\n    image: busybox\n    build: .\n")
    r = compose(d, str(bad), "config")
    assert r.returncode == 1 and "services.web.build: not supported" in r.stderr
    bad.write_text("services: [\n")
    r = compose(d, str(bad), "up", "-d")
    assert r.returncode == 1 and "invalid YAML" in r.stderr and len(r.stderr.splitlines()) <= 2
    r = compose(d, str(bad), "up", "--bogus")
    assert r.returncode == 125
    assert ids(d) == {} and "tcrtest_default" not in d.cli("network", "ls", "-q").stdout.split()


def test_unhealthy_dependency_stops_up(d, tmp_path):
    f = tmp_path / "sick.yaml"
    f.write_text("name: tcrtest\nservices:\n  db:\n    image: busybox\n    command: sleep 100\n"
                 "    healthcheck: {test: [CMD, 'false'], interval: 100ms, retries: 1}\n"
                 "  web:\n    image: busybox\n    command: sleep 100\n"
                 "    depends_on: {db: {condition: service_healthy}}\n")
    r = compose(d, str(f), "up", "-d")
    assert r.returncode == 1 and "dependency failed to start: container tcrtest-db-1 is unhealthy" in r.stderr
    assert set(ids(d)) == {"tcrtest-db-1"}
    assert compose(d, str(f), "down").returncode == 0
    assert os.path.exists(str(f))
