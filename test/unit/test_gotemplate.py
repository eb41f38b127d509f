"""docker's --format Go-template subset (tcr.commands.gotemplate) and the listing/inspect renderers."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.commands import gotemplate, render
from tcr.common.errors import UsageError

ITEMS = [
    {"ID": "0123456789ab", "Names": "web", "Status": "Up 2 seconds", "Labels": {"app": "shop", "tier": "fe"},
     "Ports": ["80/tcp"], "Count": 3, "State": {"Status": "running", "Running": True}},
    {"ID": "ba9876543210", "Names": "db", "Status": "Exited (0) 1 minute ago", "Labels": {},
     "Ports": [], "Count": 0, "State": {"Status": "exited", "Running": False}},
]


@pytest.mark.parametrize("tpl,want", [
    ("{{.Names}}", "web\ndb\n"),
    ("{{.ID}}:{{.Names}}", "0123456789ab:web\nba9876543210:db\n"),
    ("{{.State.Status}}", "running\nexited\n"),
    ("{{json .Labels}}", '{"app":"shop","tier":"fe"}\n{}\n'),
    ('{{index .Labels "app"}}', "shop\n\n"),
    ('{{join .Ports ","}}', "80/tcp\n\n"),
    ("{{upper .Names}}", "WEB\nDB\n"),
    ("{{len .Ports}}", "1\n0\n"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up\ndown\n"),
    ('{{printf "%-4s|%d" .Names .Count}}', "web |3\ndb  |0\n"),
    ("{{.Names}}\\t{{.Count}}", "web\t3\ndb\t0\n"),
    ("plain", "plain\nplain\n"),
])
def test_render_list(tpl, want):
    assert gotemplate.render_list(tpl, ITEMS) == want


def test_json_dot_is_one_object_per_line():
    out = gotemplate.render_list("{{json .}}", ITEMS).splitlines()
    assert [json.loads(line)["Names"] for line in out] == ["web", "db"]


def test_table_has_headers_and_aligned_columns():
    out = gotemplate.render_list("table {{.ID}}\t{{.Names}}\t{{.Status}}", ITEMS, {"ID": "CONTAINER ID"})
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAMES", "STATUS"]
    assert lines[1].index("web") == lines[2].index("db") == lines[0].index("NAMES")


@pytest.mark.parametrize("tpl", [
    "{{.Names", "{{if .X}}", "{{end}}", "{{else}}", "{{nosuch .Names}}", "{{}}", "{{json}}",
    '{{index .Labels}}', "{{.Names.Deeper}}", "{{.NoField}}", "x" * 5000, "{{1x}}",
    '{{printf "%d" .Names}}', '{{printf "\\"}}',
])
def test_bad_templates_are_usage_errors(tpl):
    with pytest.raises(UsageError):
        gotemplate.render_list(tpl, ITEMS)


def test_missing_field_names_the_choices():
    with pytest.raises(UsageError, match="fields: .*Names"):
        gotemplate.render_list("{{.Nmaes}}", ITEMS)


def test_listing_and_objects():
    assert render.listing("table", ITEMS, lambda: "T\n") == "T\n"
    assert json.loads(render.listing("json", ITEMS, lambda: "T\n"))[1]["Names"] == "db"
    assert render.listing("{{.Names}}", ITEMS, lambda: "T\n") == "web\ndb\n"
    assert json.loads(render.objects("json", ITEMS))[0]["ID"] == "0123456789ab"
    assert render.objects("{{.State.Status}}", ITEMS) == "running\nexited\n"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="{}.|\"`abcXYZ ()-_%s\\t\n0123456789ifelsndjo", max_size=60))
def test_any_template_renders_or_is_a_usage_error(tpl):
    # The parser is fed straight from the command line: nothing but a one-line UsageError escapes.
    try:
        out = gotemplate.render_list(tpl, ITEMS)
    except UsageError as e:
        assert "\n" not in str(e)
    else:
        assert isinstance(out, str)
