from tcr.containers import execplan


def test_plan_merges_env_and_defaults_cwd(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("app:x:1000:1001:app:/home/app:/bin/sh\n")
    cfg = {"root": {"path": str(root)},
           "process": {"env": ["PATH=/bin", "A=1"], "cwd": "/srv"}}
    p = execplan.plan(cfg, ["A=2", "B=3", "NOVALUE"], "app", None)
    assert p.env == ["PATH=/bin", "A=2", "B=3", "HOME=/home/app"]  # the container's, then -e, then HOME
    assert p.user == "1000:1001" and p.cwd == "/srv"
    assert execplan.plan(cfg, [], None, "/tmp").cwd == "/tmp"
    assert execplan.plan({}, [], None, None).cwd == "/"
