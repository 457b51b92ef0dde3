import pytest

from swarmctl.constraints import Constraint, parse_constraint, parse_preference
from swarmctl.errors import SwarmctlError
from swarmctl.models import Node, NodeFacts, Role


def node(**fields: object) -> Node:
    defaults: dict[str, object] = {
        "id": "n1",
        "hostname": "web1",
        "role": Role.WORKER,
        "address": "10.0.0.1",
        "created_at": "",
        "updated_at": "",
        "labels": {"zone": "a"},
        "facts": NodeFacts(os="linux", arch="x86_64"),
    }
    return Node(**{**defaults, **fields})  # type: ignore[arg-type]


def holds(text: str, on: Node | None = None) -> bool:
    return parse_constraint(text).holds(on or node())


def error_of(text: str) -> str:
    with pytest.raises(SwarmctlError) as caught:
        parse_constraint(text)
    return str(caught.value)


# ----------------------------------------------------------------------------- parsing


def test_a_label_constraint_parses_into_attribute_label_operator_and_value() -> None:
    assert parse_constraint("node.labels.zone==a") == Constraint(
        "node.labels.zone==a", "node.labels", "zone", True, "a"
    )


def test_whitespace_around_the_operator_is_allowed() -> None:
    assert parse_constraint("  node.role  !=  manager ") == Constraint(
        "  node.role  !=  manager ", "node.role", "", False, "manager"
    )


def test_a_single_equals_sign_is_refused() -> None:
    assert (
        error_of("node.labels.zone=a") == "constraint 'node.labels.zone=a': expected `==` or `!=`"
    )


def test_a_constraint_without_operator_is_refused() -> None:
    assert error_of("node.labels.zone") == "constraint 'node.labels.zone': expected `==` or `!=`"


def test_an_unknown_attribute_is_refused_with_the_known_ones() -> None:
    assert error_of("node.foo==1") == (
        "constraint 'node.foo==1': unknown attribute node.foo (use node.id, node.hostname,"
        " node.role, node.platform.os, node.platform.arch or node.labels.<key>)"
    )


def test_an_empty_value_is_refused() -> None:
    assert (
        error_of("node.hostname== ") == "constraint 'node.hostname== ': expected a value after `==`"
    )


def test_an_empty_attribute_is_refused() -> None:
    assert error_of("!=a") == "constraint '!=a': expected an attribute before `!=`"


def test_a_label_constraint_without_a_key_is_refused() -> None:
    assert error_of("node.labels.==a") == "constraint 'node.labels.==a': expected node.labels.<key>"


def test_a_second_operator_is_refused() -> None:
    assert error_of("node.role==manager!=worker") == (
        "constraint 'node.role==manager!=worker': expected one `==` or `!=`"
    )


def test_a_role_other_than_manager_or_worker_is_refused() -> None:
    assert error_of("node.role==boss") == (
        "constraint 'node.role==boss': node.role must be manager or worker"
    )


def test_attribute_names_are_case_insensitive_and_label_keys_are_not() -> None:
    assert parse_constraint("Node.Labels.Zone==a").label == "Zone"


# ---------------------------------------------------------------------------- matching


def test_node_id_matches_the_id() -> None:
    assert holds("node.id==n1") and not holds("node.id==n2")


def test_node_hostname_matches_the_hostname() -> None:
    assert holds("node.hostname==web1") and not holds("node.hostname==web2")


def test_node_role_matches_the_role() -> None:
    assert holds("node.role==worker") and holds("node.role==manager", node(role=Role.MANAGER))


def test_platform_os_and_arch_come_from_the_facts() -> None:
    assert holds("node.platform.os==linux") and holds("node.platform.arch==x86_64")


def test_values_match_case_insensitively_as_in_swarm() -> None:
    assert holds("node.hostname==WEB1")


def test_not_equal_holds_for_another_value() -> None:
    assert holds("node.labels.zone!=b") and not holds("node.labels.zone!=a")


def test_a_missing_label_never_equals_a_value() -> None:
    assert not holds("node.labels.rack==a")


def test_not_equal_of_a_missing_label_holds() -> None:
    assert holds("node.labels.rack!=a")


def test_a_label_key_matches_case_sensitively() -> None:
    assert not holds("node.labels.ZONE==a")


# ------------------------------------------------------------------------- preferences


def test_a_spread_preference_gives_the_label_key() -> None:
    assert parse_preference("spread=node.labels.zone") == "zone"


def test_a_preference_without_spread_is_refused() -> None:
    with pytest.raises(SwarmctlError) as caught:
        parse_preference("zone")
    assert str(caught.value) == ("placement preference 'zone': expected spread=node.labels.<key>")


@pytest.mark.parametrize(
    "text", ["spread=node.hostname", "spread=node.labels.", "pack=node.labels.zone"]
)
def test_a_preference_not_over_a_node_label_is_refused(text: str) -> None:
    with pytest.raises(SwarmctlError) as caught:
        parse_preference(text)
    assert str(caught.value) == f"placement preference '{text}': expected spread=node.labels.<key>"
