"""tcr.kernel.rlimits: /proc/self/limits instead of the `resource` module, same numbers."""

import resource

from tcr.kernel import rlimits

SAMPLE = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max core file size        0                    unlimited            bytes
Max processes             96365                96365                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
Max pending signals       96365                96365                signals
"""


def test_parse_the_kernels_table():
    assert rlimits.parse(SAMPLE) == {
        "RLIMIT_CORE": (0, rlimits.INFINITY), "RLIMIT_NPROC": (96365, 96365),
        "RLIMIT_NOFILE": (1024, 524288), "RLIMIT_MEMLOCK": (8388608, 8388608)}


def test_bad_or_missing_rows_are_left_out():
    assert rlimits.parse("Max open files  lots  of\nMax processes 5\n") == {}
    assert rlimits.limits("/nonexistent/limits") == {}


def test_the_same_numbers_as_getrlimit():
    got = rlimits.limits()
    assert set(got) == set(rlimits.LABELS)
    assert rlimits.INFINITY == resource.RLIM_INFINITY
    for name, pair in got.items():
        assert pair == resource.getrlimit(getattr(resource, name)), name
