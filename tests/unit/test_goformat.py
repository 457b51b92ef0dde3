"""docker's --format as swarmctl renders it: the examples of docker's own documentation
(`service ls`, `node ls`, `service ps`, `inspect`), JSON rows, table templates, and the
one-line refusals."""

import json

import pytest

from swarmctl.cli.goformat import Template, render_documents, render_rows
from swarmctl.errors import SwarmctlError

SERVICE = {
    "ID": "0zmvwuiu3vue",
    "Name": "tender_murdock",
    "Mode": "replicated",
    "Replicas": "10/10",
    "Image": "busybox:latest",
    "Ports": "",
}
NODE = {
    "ID": "e216jshn25ckzbvmwlnh5jr3g",
    "Hostname": "swarm-manager1",
    "Status": "Ready",
    "Availability": "Active",
    "ManagerStatus": "Leader",
    "EngineVersion": "24.0.5",
    "TLSStatus": "Ready",
    "Self": True,
}


def rendered(capsys: pytest.CaptureFixture[str], fmt: str, rows: list[dict]) -> str:
    render_rows(fmt, rows, lambda: print("DEFAULT"))
    return capsys.readouterr().out


def test_docker_service_ls_example_renders_as_docker_prints_it(capsys) -> None:
    out = rendered(capsys, "{{.ID}}: {{.Mode}} {{.Replicas}}", [SERVICE])
    assert out == "0zmvwuiu3vue: replicated 10/10\n"


def test_docker_node_ls_example_renders_as_docker_prints_it(capsys) -> None:
    out = rendered(capsys, "{{.ID}}: {{.Hostname}} {{.TLSStatus}}", [NODE])
    assert out == "e216jshn25ckzbvmwlnh5jr3g: swarm-manager1 Ready\n"


def test_json_prints_one_compact_object_a_line_with_sorted_keys(capsys) -> None:
    lines = rendered(capsys, "json", [SERVICE, NODE]).splitlines()
    assert [json.loads(line) for line in lines] == [SERVICE, NODE]
    assert lines[0].startswith('{"ID":"0zmvwuiu3vue","Image":"busybox:latest","Mode":')


def test_table_and_no_format_use_the_default_printer(capsys) -> None:
    assert rendered(capsys, "table", [SERVICE]) == "DEFAULT\n"
    assert rendered(capsys, "", [SERVICE]) == "DEFAULT\n"


def test_a_table_template_has_dockers_headers_and_padded_columns(capsys) -> None:
    out = rendered(capsys, "table {{.Hostname}}\\t{{.ManagerStatus}}\\t{{.Self}}", [NODE])
    assert out.splitlines() == [
        "HOSTNAME         MANAGER STATUS   SELF",
        "swarm-manager1   Leader           true",
    ]


def test_a_header_can_be_named_by_the_listing(capsys) -> None:
    render_rows("table {{.ID}}", [{"ID": "abc"}], print, headers={"ID": "NETWORK ID"})
    assert capsys.readouterr().out.splitlines() == ["NETWORK ID", "abc"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{json .}}", '{"Name":"web","Args":["a","b"],"Spec":{"Replicas":3},"Up":true}'),
        ("{{json .Args}}", '["a","b"]'),
        ('{{join .Args " , "}}', "a , b"),
        ("{{upper .Name}}", "WEB"),
        ("{{.Name | upper}}", "WEB"),
        ("{{lower .Name}}", "web"),
        ("{{title .Name}}", "Web"),
        ("{{.Args}}", "[a b]"),
        ("{{println .Name}}", "web\n"),
        ("{{truncate .Name 2}}", "we"),
        ("{{- .Name -}}", "web"),
        ("{{.Spec.Replicas}}", "3"),
        ("{{.Spec}}", "map[Replicas:3]"),
        ("{{.Up}}", "true"),
    ],
)
def test_template_functions_docker_users_write(template: str, expected: str) -> None:
    data = {"Name": "web", "Args": ["a", "b"], "Spec": {"Replicas": 3}, "Up": True}
    assert Template(template).render(data) == expected


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{range .Args}}x{{end}}", "'range' is not supported"),
        ("{{if .Name}}x{{end}}", "'if' is not supported"),
        ("{{.Nope}}", "no field 'Nope' here (fields: Name)"),
        ("{{.Name", "unbalanced {{ }}"),
        ("{{upper}}", "wrong number of arguments to upper"),
    ],
)
def test_what_the_renderer_cannot_do_is_refused_in_one_line(template: str, error: str) -> None:
    with pytest.raises(SwarmctlError) as caught:
        Template(template).render({"Name": "web"})
    assert str(caught.value).startswith(f"--format {template!r}: {error}")
    assert "\n" not in str(caught.value)


def test_a_format_with_no_template_is_refused(capsys) -> None:
    with pytest.raises(SwarmctlError, match="--format 'yaml': use table, json"):
        render_rows("yaml", [SERVICE], print)


def test_inspect_prints_full_documents_or_each_through_a_template(capsys) -> None:
    render_documents(None, [SERVICE])
    assert json.loads(capsys.readouterr().out) == [SERVICE]
    render_documents("{{.Name}}", [SERVICE, {"Name": "other"}])
    assert capsys.readouterr().out == "tender_murdock\nother\n"


def test_a_table_header_names_nested_fields_and_functions_by_their_last_field(capsys) -> None:
    rows = [{"Name": "web", "Spec": {"Mode": "global"}}]
    render_rows("table {{upper .Name}}\\t{{.Spec.Mode}}", rows, print)
    assert capsys.readouterr().out.splitlines() == ["NAME   MODE", "WEB    global"]


def test_dashes_trim_the_space_around_an_action_and_strings_take_go_escapes() -> None:
    assert Template("a  {{- .Name -}}  b").render({"Name": "web"}) == "awebb"
    assert Template('{{join .L "é\\t"}}').render({"L": ["x", "y"]}) == "xé\ty"
