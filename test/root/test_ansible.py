"""The Ansible collection (ansible/) for real: ansible-core from PyPI drives two "boards" (an sshd on
127.0.0.1 each, each board's `tcr` wired to its own tcrd with its own root and socket).

A playbook deploys a two-service compose stack (plus an image copied from the controller, a
network, a volume and a single container) to both; a second run reports changed=0; check mode
with a new image tag changes nothing; the new tag then recreates exactly one service per board."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from test.fixtures import sshd as sshd_fixture
from test.fixtures.daemon import managed_tcrd
from test.root.test_containers_image import build

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
SSH_ARGS = ("-o ControlMaster=no -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "
            "-o IdentitiesOnly=yes -o LogLevel=ERROR")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

SITE = """
- hosts: boards
  gather_facts: false
  vars:
    web_tag: latest
  tasks:
    - name: images from the controller, copied only when the board lacks them
      tcr.tcr.tcr_image:
        src: "{{ item }}"
      loop: "{{ images }}"
    - tcr.tcr.tcr_volume:
        name: fleet-data
        labels: {owner: ansible}
    - tcr.tcr.tcr_network:
        name: fleet-net
    - name: the application stack
      tcr.tcr.tcr_compose:
        project_name: shop
        definition:
          services:
            db:
              image: busybox:latest
              command: [sh, -c, "touch /tmp/up; exec sleep 1000"]
              restart: always
              healthcheck: {test: [CMD, test, -f, /tmp/up], interval: 200ms, retries: 3}
              volumes: ["data:/data"]
            web:
              image: "busybox:{{ web_tag }}"
              command: sleep 1000
              restart: always
              depends_on: {db: {condition: service_healthy}}
          volumes: {data: {}}
      register: stack
    - tcr.tcr.tcr_container:
        name: fleet-agent
        image: busybox:latest
        command: sleep 1000
        restart: always
        network: fleet-net
        volumes: ["fleet-data:/data"]
        labels: {role: agent}
    - tcr.tcr.tcr_info:
    - name: facts name the containers
      assert:
        that: "{{ ['shop-db-1', 'shop-web-1', 'fleet-agent']
                  | difference(tcr.containers | map(attribute='Names')) | length == 0 }}"
"""

TEARDOWN = """
- hosts: boards
  gather_facts: false
  tasks:
    - tcr.tcr.tcr_compose: {project_name: shop, state: absent, remove_volumes: true}
    - tcr.tcr.tcr_container: {name: fleet-agent, state: absent}
    - tcr.tcr.tcr_network: {name: fleet-net, state: absent}
    - tcr.tcr.tcr_volume: {name: fleet-data, state: absent}
    - tcr.tcr.tcr_image: {name: "busybox:v2", state: absent}
"""


@pytest.fixture
def fleet(tmp_path):
    if not sshd_fixture.available():
        pytest.skip("openssh-server/openssh-client not installed")
    if not os.path.exists(os.path.join(BIN, "ansible-playbook")):
        pytest.skip("ansible-core not installed (pip install -e .[test])")
    images = [build(str(tmp_path), name="v1.sqfs", tag="latest", variant="a1"),
              build(str(tmp_path), name="v2.sqfs", tag="v2", variant="a2")]
    with managed_tcrd(prefix="tcrd-b1") as d1, managed_tcrd(prefix="tcrd-b2") as d2, \
            sshd_fixture.managed_sshd(d1.socket) as s1, sshd_fixture.managed_sshd(d2.socket) as s2:
        work = tmp_path / "ansible"
        work.mkdir()
        env = dict(os.environ, LC_ALL="C.UTF-8", ANSIBLE_HOME=str(work / "home"),
                   ANSIBLE_CONFIG=str(work / "ansible.cfg"), PATH=BIN + os.pathsep + os.environ["PATH"])
        env.pop("TCR_SOCKET", None)
        r = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline",
                            os.path.join(REPO, "ansible"), "-p", str(work / "collections")],
                           env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        (work / "ansible.cfg").write_text(textwrap.dedent(f"""\
            [defaults]
            inventory = {work}/inventory.ini
            collections_path = {work}/collections
            host_key_checking = False
            local_tmp = {work}/local-tmp
            remote_tmp = /tmp/.tcr-ansible-{os.getpid()}
            interpreter_python = {sys.executable}
            forks = 2
            retry_files_enabled = False
            [ssh_connection]
            ssh_args = {SSH_ARGS}
            pipelining = True
            """))
        (work / "inventory.ini").write_text(
            "[boards]\n" + "".join(
                f"board{i} ansible_host=127.0.0.1 ansible_port={s.port} ansible_user=root "
                f"ansible_ssh_private_key_file={s.key}\n" for i, s in ((1, s1), (2, s2)))
            + f"\n[boards:vars]\nimages={json.dumps(images)}\n")
        (work / "site.yml").write_text(SITE)
        (work / "teardown.yml").write_text(TEARDOWN)

        def play(*args):
            r = subprocess.run([os.path.join(BIN, "ansible-playbook"), *args], env=env, cwd=str(work),
                               capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
            recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)),
                                  "unreachable": int(m.group(4)), "failed": int(m.group(5))}
                     for m in RECAP.finditer(r.stdout)}
            return r, recap

        yield type("Fleet", (), {"play": staticmethod(play), "boards": (d1, d2)})
        shutil.rmtree(f"/tmp/.tcr-ansible-{os.getpid()}", ignore_errors=True)


def containers(d):
    r = d.cli("ps", "-a", "--format", "{{.Names}} {{.Id}} {{.State}}")
    return {x.split()[0]: (x.split()[1], x.split()[2]) for x in r.stdout.splitlines()}


def test_playbook_deploys_idempotently_to_two_boards(fleet):
    r, recap = fleet.play("site.yml")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert set(recap) == {"board1", "board2"}
    assert all(h["changed"] == 5 and h["failed"] == 0 for h in recap.values()), recap
    first = [containers(d) for d in fleet.boards]
    for c in first:
        assert {n: s for n, (_, s) in c.items()} == {"shop-db-1": "running", "shop-web-1": "running",
                                                    "fleet-agent": "running"}
    for d in fleet.boards:
        assert {"busybox:latest", "busybox:v2"} <= set(
            d.cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.replace("docker.io/library/", "")
            .split())

    r, recap = fleet.play("site.yml")  # the same play again: nothing to do
    assert r.returncode == 0, r.stdout[-4000:]
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in recap.values()), r.stdout[-4000:]
    assert [containers(d) for d in fleet.boards] == first

    r, recap = fleet.play("site.yml", "-e", "web_tag=v2", "--check", "--diff")  # check mode: plan only
    assert r.returncode == 0, r.stdout[-4000:]
    assert all(h["changed"] == 1 for h in recap.values()), r.stdout[-4000:]
    assert "recreate" in r.stdout
    assert [containers(d) for d in fleet.boards] == first

    r, recap = fleet.play("site.yml", "-e", "web_tag=v2")  # the new tag: exactly one service recreated
    assert r.returncode == 0, r.stdout[-4000:]
    assert all(h["changed"] == 1 for h in recap.values()), r.stdout[-4000:]
    for before, d in zip(first, fleet.boards):
        after = containers(d)
        assert after["shop-db-1"] == before["shop-db-1"] and after["fleet-agent"] == before["fleet-agent"]
        assert after["shop-web-1"][0] != before["shop-web-1"][0] and after["shop-web-1"][1] == "running"

    r, recap = fleet.play("teardown.yml", "--check")
    assert r.returncode == 0 and all(h["changed"] == 5 for h in recap.values()), r.stdout[-4000:]
    assert len(containers(fleet.boards[0])) == 3
    r, recap = fleet.play("teardown.yml")
    assert r.returncode == 0 and all(h["changed"] == 5 for h in recap.values()), r.stdout[-4000:]
    for d in fleet.boards:
        assert containers(d) == {}
        assert "fleet-net" not in d.cli("network", "ls", "-q").stdout.split()
        assert d.cli("volume", "ls", "-q").stdout.split() == []
    r, recap = fleet.play("teardown.yml")
    assert r.returncode == 0 and all(h["changed"] == 0 for h in recap.values()), r.stdout[-4000:]
