"""bench/common.py helpers (section replacement, statistics, interleaving, results) and the
summary/adapters of bench/run_all.py. Pure functions: no root, no daemon."""

import importlib.util
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench")


def _load(name):
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)  # run_all imports `common` as the scripts do
    path = os.path.join(BENCH, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


common = _load("common")
run_all = _load("run_all")

DOC = """# Benchmarks

## Summary

old summary

## DNS

dns text
| a | b |

## Image load

load text
"""


# ---- statistics ----------------------------------------------------------------------------

def test_median_odd_even_unsorted():
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert common.median([4, 1, 3, 2]) == 2.5
    assert common.median([7]) == 7.0


def test_median_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        common.median([])


def test_summarize():
    s = common.summarize([5, 1, 3])
    assert s == {"n": 3.0, "median": 3.0, "min": 1.0, "max": 5.0}


# ---- section replacement -------------------------------------------------------------------

def test_replace_section_changes_only_that_section():
    out = common.replace_section(DOC, "DNS", "## DNS\n\nnew dns\n")
    assert "new dns" in out and "dns text" not in out
    before, after = DOC.split("## DNS")[0], DOC.split("## Image load")[1]
    assert out.startswith(before) and out.endswith(after)
    assert common.section_titles(out) == ["Summary", "DNS", "Image load"]


def test_replace_last_section():
    out = common.replace_section(DOC, "Image load", "## Image load\n\nfaster\n")
    assert out.endswith("## Image load\n\nfaster\n\n")
    assert "dns text" in out and "load text" not in out


def test_missing_section_is_appended_or_put_on_top():
    out = common.replace_section(DOC, "Scale", "## Scale\n\nx\n")
    assert common.section_titles(out) == ["Summary", "DNS", "Image load", "Scale"]
    doc = DOC.replace("## Summary\n\nold summary\n\n", "")
    top = common.replace_section(doc, "Summary", "## Summary\n\nnew\n", top=True)
    assert top.startswith("# Benchmarks\n\n## Summary\n\nnew\n\n## DNS\n")


def test_replace_section_does_not_match_a_prefix_title():
    doc = "# Benchmarks\n\n## DNS extra\n\nkeep\n\n## DNS\n\nold\n"
    out = common.replace_section(doc, "DNS", "## DNS\n\nnew\n")
    assert "keep" in out and "old" not in out and out.count("## DNS") == 2


def test_replace_section_in_empty_text_starts_the_document():
    out = common.replace_section("", "DNS", "## DNS\n\nx\n")
    assert out.startswith("# Benchmarks\n\n## DNS\n")


def test_body_must_carry_its_heading():
    with pytest.raises(ValueError):
        common.replace_section(DOC, "DNS", "## Other\n\nx\n")
    with pytest.raises(ValueError):
        common.replace_section(DOC, "DNS", "dns without heading\n")


def test_title_with_regex_characters():
    doc = "# Benchmarks\n\n## Build (tcr-create-image)\n\nold\n\n## DNS\n\nd\n"
    out = common.replace_section(doc, "Build (tcr-create-image)", "## Build (tcr-create-image)\n\nnew\n")
    assert "new" in out and "old" not in out and "## DNS\n\nd" in out


def test_write_section_round_trip(tmp_path):
    p = str(tmp_path / "b.md")
    common.write_section("DNS", "## DNS\n\none\n", path=p)
    common.write_section("Load", "## Load\n\ntwo\n", path=p)
    common.write_section("DNS", "## DNS\n\nthree\n", path=p)
    with open(p) as f:
        text = f.read()
    assert text == "# Benchmarks\n\n## DNS\n\nthree\n\n## Load\n\ntwo\n"


# ---- interleaving --------------------------------------------------------------------------

def test_interleave_alternates_order_and_drops_warmup():
    calls = []
    cases = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    res = common.interleave(cases, runs=3, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert len(res["a"]) == 3 and len(res["b"]) == 3


def test_interleave_uses_a_returned_duration_and_runs_between():
    undone = []
    res = common.interleave({"x": lambda: 0.25}, runs=2, warmup=0, between=undone.append)
    assert res == {"x": [0.25, 0.25]}
    assert undone == ["x", "x"]


def test_interleave_rejects_bad_counts():
    with pytest.raises(ValueError):
        common.interleave({"x": lambda: None}, runs=0)


# ---- results -------------------------------------------------------------------------------

def test_metric_round_trip():
    m = common.Metric("load", "tcr load", "12.0 ms", "<= 25 ms", True, "n")
    assert common.Metric.from_dict(m.to_dict()) == m
    m2 = common.Metric("memory", "size", "400 kB")
    assert common.Metric.from_dict(m2.to_dict()) == m2


def test_metric_rejects_a_non_boolean_verdict():
    with pytest.raises(ValueError):
        common.Metric.from_dict({"bench": "x", "name": "y", "value": "1", "met": "yes"})


def test_record_and_load_results(tmp_path, monkeypatch):
    monkeypatch.setenv("TCR_BENCH_RESULTS", str(tmp_path))
    common.record("b", [common.Metric("b", "m1", "1x", ">= 1x", True)])
    common.record("a", [common.Metric("a", "m2", "2x", "", None)])
    common.record("b", [common.Metric("b", "m3", "3x", "<= 1x", False)])  # replaces b's earlier ones
    got = common.load_results()
    assert [(m.bench, m.name, m.met) for m in got] == [("a", "m2", None), ("b", "m3", False)]


def test_table():
    t = common.table(["x", "y"], [["a", 1]])
    assert t.splitlines() == ["| x | y |", "|---|---:|", "| a | 1 |"]


def test_machine_description_has_the_basics():
    m = common.machine()
    assert set(m) >= {"cpu", "cores", "kernel", "python", "date"}
    assert "cores" in common.machine_line()


# ---- run_all -------------------------------------------------------------------------------

def test_adapters_read_the_printing_benches():
    dns = run_all._dns("local    tcr   70000 q/s\nlocal: tcr/dnsmasq = 1.10x\n"
                       "forwarded: tcr/dnsmasq = 0.90x\n")
    assert [(m.value, m.met) for m in dns] == [("1.10x", True), ("0.90x", None)]
    cli = run_all._cli("| `tcr image ls` | console script | 31.5 | over target |\n"
                       "| `tcr ps` | console script | 17.0 | ok |\n"
                       "| `tcr help` | console script | 9.0 | ok |\n")
    assert [(m.name.split("`")[1], m.met) for m in cli] == [("tcr image ls", False), ("tcr ps", True)]
    shipped = run_all._cli("| `tcr ps` | installed `tcr` (`#!python3 -IS`) | 15.8 | ok |\n"
                           "| `tcr ps` | pip console script | 31.0 | over target |\n")
    assert [(m.value, m.met) for m in shipped] == [("15.8 ms", True)] and "installed" in shipped[0].name
    build = run_all._build("median raw 10.00s, tcr-create-image 12.00s, ratio 1.20x (missed the 1.1x target)")
    assert build[0].value == "1.20x" and build[0].met is False
    assert run_all._dns("nothing") == [] and run_all._build("") == []


def test_summary_section():
    metrics = [common.Metric("load", "l", "10 ms", "<= 25 ms", True),
               common.Metric("memory", "m", "25 MB", "<= 16 MB", False),
               common.Metric("memory", "size", "400 kB")]
    text = run_all.summary({"load": ("ok", 12.0), "dns": ("failed (exit 1)", 3.0)}, metrics)
    assert text.startswith("## Summary\n")
    assert "Targets: 1 met, 1 missed." in text
    assert "**missed**" in text and "failed (exit 1)" in text
    doc = common.replace_section(DOC, "Summary", text, top=True)
    assert common.section_titles(doc) == ["Summary", "DNS", "Image load"]


def test_discover_finds_the_bench_scripts():
    names = run_all.discover()
    assert {"load", "scale", "memory", "podman"} <= set(names)
    assert "common" not in names and "run_all" not in names
