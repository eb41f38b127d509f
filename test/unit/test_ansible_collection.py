"""The Ansible collection's pieces that run without a board: its copy of XXH64 agrees with tcr's,
the controller reads an image id from a .sqfs like tcrd does, run arguments hash stably, and every
module documents itself (ansible-doc) and compiles. The real deployment is test/root/test_ansible.py."""

import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcr.formats import xxh64 as tcr_xxh64

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLL = os.path.join(ROOT, "ansible")
PLUGINS = os.path.join(COLL, "plugins")
MODULES = ["tcr_image", "tcr_container", "tcr_network", "tcr_volume", "tcr_compose", "tcr_info"]


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@given(st.binary(max_size=100))
def test_collection_xxh64_matches_tcr(data):
    mod = _load(os.path.join(PLUGINS, "module_utils", "xxh64.py"), "coll_xxh64")
    assert mod.xxh64(data) == tcr_xxh64.xxh64(data)


def test_galaxy_metadata_and_every_module_compiles():
    with open(os.path.join(COLL, "galaxy.yml")) as f:
        text = f.read()
    assert "namespace: tcr" in text and "name: tcr" in text
    for m in MODULES:
        py_compile.compile(os.path.join(PLUGINS, "modules", m + ".py"), doraise=True)
    py_compile.compile(os.path.join(PLUGINS, "action", "tcr_image.py"), doraise=True)


@pytest.fixture
def collection_path(tmp_path):
    """The collection where Ansible looks for it (a symlink: ansible_collections/tcr/tcr)."""
    base = tmp_path / "ansible_collections" / "tcr"
    base.mkdir(parents=True)
    os.symlink(COLL, base / "tcr")
    return str(tmp_path)


def test_ansible_doc_reads_every_module(collection_path, tmp_path):
    doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    if not os.path.exists(doc):
        pytest.skip("ansible-core not installed")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_path, ANSIBLE_HOME=str(tmp_path / "h"),
               LC_ALL="C.UTF-8")
    r = subprocess.run([doc, "--json"] + [f"tcr.tcr.{m}" for m in MODULES], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    docs = json.loads(r.stdout)
    assert sorted(docs) == sorted(f"tcr.tcr.{m}" for m in MODULES)


def test_controller_reads_the_image_id_of_a_sqfs(collection_path, tmp_path, monkeypatch):
    if not shutil.which("mksquashfs") or not shutil.which("unsquashfs"):
        pytest.skip("squashfs-tools not installed")
    pytest.importorskip("ansible")
    monkeypatch.syspath_prepend(collection_path)
    from ansible_collections.tcr.tcr.plugins.action import tcr_image

    src = tmp_path / "src"
    src.mkdir()
    digest = "sha256:" + "ab" * 32
    (src / "image-info.json").write_text(json.dumps({"version": 1, "image": {"digest": digest}}))
    out = str(tmp_path / "x.sqfs")
    subprocess.run(["mksquashfs", str(src), out, "-quiet", "-no-progress", "-noappend"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    assert tcr_image.local_image_id(out) == tcr_xxh64.image_id(digest)
    (src / "image-info.json").write_text(json.dumps({"version": 1, "image": {"id": "0123456789abcdef"}}))
    subprocess.run(["mksquashfs", str(src), out, "-quiet", "-no-progress", "-noappend"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    assert tcr_image.local_image_id(out) == "0123456789abcdef"
    assert tcr_image.local_image_id(str(tmp_path / "missing.sqfs")) is None


def test_container_run_args_are_stable(collection_path, monkeypatch):
    pytest.importorskip("ansible")
    monkeypatch.syspath_prepend(collection_path)
    from ansible_collections.tcr.tcr.plugins.modules import tcr_container

    p = {k: None for k in ("env", "ports", "volumes", "devices", "cap_add", "cap_drop", "network", "restart",
                           "user", "workdir", "memory", "cpus", "pids_limit", "entrypoint", "health_cmd",
                           "health_interval", "health_retries", "labels", "extra_args", "command")}
    p.update(name="a", image="img:1", read_only=False, env={"B": "2", "A": "1"}, command="sh -c 'echo hi'",
             labels={"z": "1", "a": "2"})
    a = tcr_container.run_args(p)
    assert a == ["--name=a", "--env=A=1", "--env=B=2", "--label=a=2", "--label=z=1", "img:1", "sh", "-c",
                 "echo hi"]
