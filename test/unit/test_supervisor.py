"""Restart policy decisions and backoff."""

import pytest

from tcr.common.errors import InvalidArgument
from tcr.containers import supervisor as sv
from tcr.containers.supervisor import RestartPolicy, parse_policy


def test_parse_policy():
    assert parse_policy(None) == RestartPolicy("no")
    assert parse_policy("always") == RestartPolicy("always")
    assert parse_policy("on-failure:3") == RestartPolicy("on-failure", 3)
    assert str(parse_policy("on-failure:3")) == "on-failure:3"
    for bad in ("sometimes", "always:3", "on-failure:x", "on-failure:-1"):
        with pytest.raises(InvalidArgument):
            parse_policy(bad)


def test_backoff_sequence_doubles_and_caps():
    seq = [sv.backoff_delay(i) for i in range(14)]
    assert seq[:5] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert all(b >= a for a, b in zip(seq, seq[1:]))
    assert seq[-1] == 60.0 and max(seq) == 60.0


def test_crash_loop_backs_off_then_resets_after_uptime():
    pol = RestartPolicy("always")
    streak, delays = 0, []
    for _ in range(5):
        d = sv.on_exit(pol, 1, False, 0, streak, uptime=0.01)
        assert d.restart
        delays.append(d.delay)
        streak = d.streak
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    d = sv.on_exit(pol, 1, False, 0, streak, uptime=30)  # it ran long enough: fast restart again
    assert d.restart and d.delay == pytest.approx(0.1) and d.streak == 0


def test_stop_by_user_is_never_undone():
    for name in sv.POLICIES:
        pol = RestartPolicy(name)
        assert not sv.should_restart(pol, 137, True, 0)
        assert not sv.restart_at_boot(pol, True, was_running=True)


def test_shutdown_does_not_restart_now_but_comes_back_at_boot():
    for name in ("always", "unless-stopped"):
        pol = RestartPolicy(name)
        assert not sv.should_restart(pol, 143, False, 0, shutting_down=True)
        assert sv.restart_at_boot(pol, False, was_running=False)
    assert not sv.restart_at_boot(RestartPolicy("no"), False, was_running=True)


def test_on_failure_policy():
    pol = RestartPolicy("on-failure", 2)
    assert not sv.should_restart(pol, 0, False, 0)
    assert sv.should_restart(pol, 1, False, 0)
    assert sv.should_restart(pol, None, False, 1)  # unknown code counts as a failure
    assert not sv.should_restart(pol, 1, False, 2)  # max retries reached
    assert sv.should_restart(RestartPolicy("on-failure"), 1, False, 1000)
    assert sv.restart_at_boot(pol, False, was_running=True)
    assert not sv.restart_at_boot(pol, False, was_running=False)


def test_no_policy():
    assert not sv.should_restart(RestartPolicy("no"), 1, False, 0)
    assert not sv.on_exit(RestartPolicy("no"), 1, False, 0, 0, 0).restart


def test_the_manager_loads_the_supervisor_only_for_a_policy_that_restarts():
    """The container manager skips tcr.containers.supervisor for "no" (docs/profile.md): its list of
    the other policies must stay the supervisor's, and "no" must never restart anything."""
    from tcr.containers.manager import RESTARTING

    assert tuple(p for p in sv.POLICIES if p != "no") == RESTARTING
    for code in (0, 1, None):
        for user in (True, False):
            assert not sv.on_exit(RestartPolicy("no"), code, user, 0, 0, 0).restart
            assert not sv.restart_at_boot(RestartPolicy("no"), user, was_running=True)
