"""Health checks without root: flags and the image's HEALTHCHECK (pure), the status rules, and the
monitor running real checks in forked workers on a real event loop."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcr.common.errors import TcrError
from tcr.containers import health, healthcfg
from tcr.containers.runopts import parse_run_args
from tcr.containers.runrecord import RunOptions
from tcr.daemon.loop import EventLoop


def test_flags_to_record_and_back_through_runoptions():
    o = parse_run_args(["-d", "--health-cmd", "curl -f localhost", "--health-interval", "1m30s",
                        "--health-timeout=500ms", "--health-retries", "5", "--health-start-period", "0",
                        "img"], "/")
    assert o.health == {"test": ["CMD-SHELL", "curl -f localhost"], "interval": 90.0, "timeout": 0.5,
                        "retries": 5, "startPeriod": 0.0}
    assert RunOptions.from_dict(o.to_dict()) == o
    assert parse_run_args(["img"], "/").health is None
    assert parse_run_args(["--no-healthcheck", "img"], "/").health == {"test": ["NONE"]}


@pytest.mark.parametrize("flags", [["--health-interval", "soon"], ["--health-interval", "0"],
                                   ["--health-retries", "0"], ["--health-retries", "x"],
                                   ["--health-cmd", " "],
                                   ["--no-healthcheck", "--health-retries", "2"],
                                   ["--health-start-period=-1s"], ["--health-timeout", "1x"]])
def test_bad_flags_are_one_line_errors(flags):
    with pytest.raises(TcrError) as e:
        parse_run_args([*flags, "img"], "/")
    assert "\n" not in e.value.message


def test_image_healthcheck_and_flags_merge_key_by_key():
    img = healthcfg.from_image({"Test": ["CMD", "/bin/check", "--quick"], "Interval": 5_000_000_000,
                                "Retries": 2})
    assert img == {"test": ["CMD", "/bin/check", "--quick"], "interval": 5.0, "retries": 2}
    eff = healthcfg.effective({"interval": 1.0}, img)
    assert eff == {"test": ["CMD", "/bin/check", "--quick"], "interval": 1.0, "timeout": 30.0, "retries": 2,
                   "startPeriod": 0.0}
    assert healthcfg.effective({"test": ["NONE"]}, img) is None
    assert healthcfg.effective({"interval": 1.0}, None) is None  # nothing to run
    assert healthcfg.effective(None, healthcfg.from_image({"Test": ["NONE"]})) is None
    assert healthcfg.command(["CMD-SHELL", "a && b"]) == ["/bin/sh", "-c", "a && b"]
    assert healthcfg.command(["CMD", "a", "b"]) == ["a", "b"]


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.text()),
                 st.dictionaries(st.sampled_from(["Test", "Interval", "Retries", "Timeout", "StartPeriod"]),
                                 st.one_of(st.integers(), st.text(), st.lists(st.text()), st.none()))))
def test_image_healthcheck_parser_never_crashes(doc):
    out = healthcfg.from_image(doc)
    assert out is None or (out["test"][0] in ("CMD", "CMD-SHELL", "NONE"))


class FakeLoop:
    def __init__(self):
        self.now = 0.0

    def time(self):
        return self.now


def _monitor(loop, **cfg):
    base = {"test": ["CMD", "x"], "interval": 1.0, "timeout": 1.0, "retries": 3, "startPeriod": 0.0}
    base.update(cfg)
    changes = []
    m = health.Monitor(loop, base, lambda cmd, pf: cmd, "/nonexistent", "c1", changes.append)
    return m, changes


def test_status_rules():
    loop = FakeLoop()
    m, changes = _monitor(loop, retries=2)
    assert m.status == "starting"
    m.record(1, "no", 0, 0)
    assert m.status == "starting" and m.failing_streak == 1
    m.record(1, "no", 0, 0)
    assert m.status == "unhealthy" and changes == ["unhealthy"]
    m.record(0, "ok", 0, 0)
    assert m.status == "healthy" and m.failing_streak == 0 and changes == ["unhealthy", "healthy"]
    for _ in range(7):
        m.record(0, "ok", 0, 0)
    assert len(m.view()["Log"]) == health.LOG_ENTRIES


def test_start_period():
    loop = FakeLoop()
    m, _ = _monitor(loop, retries=1, startPeriod=10.0)
    m.record(1, "", 0, 0)
    assert m.status == "starting" and m.failing_streak == 0
    loop.now = 11.0
    m.record(1, "", 0, 0)
    assert m.status == "unhealthy"
    # a success in the start period ends it at once
    m2, _ = _monitor(loop, retries=1, startPeriod=100.0)
    m2.started = loop.now
    m2.record(0, "", 0, 0)
    m2.record(1, "", 0, 0)
    assert m2.status == "unhealthy"


@pytest.mark.parametrize("script,status,code",
                         [("exit 0", "healthy", 0), ("echo bad; exit 3", "unhealthy", 3)])
def test_monitor_runs_checks_in_workers_on_the_loop(tmp_path, script, status, code):
    loop = EventLoop()
    cfg = {"test": ["CMD-SHELL", script], "interval": 0.01, "timeout": 5.0, "retries": 1, "startPeriod": 0.0}
    seen = []
    m = health.Monitor(loop, cfg, lambda cmd, pf: cmd, str(tmp_path / "pid"), "c1",
                       lambda s: (seen.append(s), loop.stop()))
    watchdog = loop.call_later(60, lambda: (loop.stop(), pytest.fail("watchdog")))
    m.start()
    loop.run()  # stops at the first status change
    watchdog.cancel()
    m.stop()
    assert seen == [status] and m.log[-1]["ExitCode"] == code
    assert m.timer is None and m.job is None
    loop.close()


def test_check_timeout_is_a_failure(tmp_path):
    out = health.run_check(["sleep", "5"], 0.2, str(tmp_path / "pid"))
    assert out["code"] == -1 and "timeout" in out["output"]
    out = health.run_check(["/nonexistent/check"], 1, str(tmp_path / "pid"))
    assert out["code"] == -1


def test_worker_pool_full_postpones(monkeypatch):
    from tcr.daemon import worker

    def full(*a, **k):
        raise TcrError("8 background jobs are already running")

    monkeypatch.setattr(worker, "spawn", full)
    loop = EventLoop()
    m, _ = _monitor(loop)
    m._fire()
    assert m.timer is not None and m.log == [] and m.status == "starting"
    m.stop()
    assert m.timer is None
    loop.close()


@given(st.dictionaries(st.sampled_from(["test", "interval", "timeout", "retries", "startPeriod", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                                 st.lists(st.text(max_size=5), max_size=3))))
def test_a_corrupt_stored_record_never_breaks_a_start(d):
    """options.health read back from disk: whatever it holds, the effective check is sane or None."""
    rec = healthcfg.validate_record(d)
    eff = healthcfg.effective(rec, None)
    assert eff is None or (eff["interval"] > 0 and eff["timeout"] > 0 and eff["retries"] >= 1
                           and healthcfg.command(eff["test"]))


def test_a_paused_container_is_not_checked():
    loop = EventLoop()
    frozen = [True]
    m = health.Monitor(loop, {"test": ["CMD", "true"], "interval": 1.0, "timeout": 1.0, "retries": 1,
                              "startPeriod": 0.0}, lambda cmd, pf: cmd, "/nonexistent", "c1",
                       paused=lambda: frozen[0])
    m._fire()
    assert m.job is None and m.timer is not None and m.log == []
    m.stop()
    loop.close()
