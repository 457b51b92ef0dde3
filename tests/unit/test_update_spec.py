"""`service update`'s options applied to a spec, the policies' options, and the update's
records in the state file and in `service inspect`."""

from dataclasses import replace
from pathlib import Path

import pytest

from swarmctl.cli.service import inspect_json
from swarmctl.codec import from_json, to_json
from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    FailureAction,
    FileRef,
    HealthCheck,
    MountSpec,
    PortSpec,
    Service,
    ServiceSpec,
    UpdateOrder,
    UpdatePolicy,
    UpdateState,
    UpdateStatus,
)
from swarmctl.spec import Changes, PolicyOptions, build_spec, updated_spec
from swarmctl.state.schema import check_documents

SPEC = ServiceSpec(
    "web",
    "nginx",
    env=("A=1", "B=2"),
    labels={"tier": "front", "old": "x"},
    ports=(PortSpec(80, 8080),),
    constraints=("node.role==worker",),
    health=HealthCheck(command="true", interval=2.0, retries=3),
)


def test_env_label_port_and_constraint_changes_add_replace_and_remove() -> None:
    spec = updated_spec(
        SPEC,
        Changes(
            env_add=["B=3", "C=4"],
            env_rm=["A"],
            label_add=["tier=back"],
            label_rm=["old"],
            publish_add=["9090:90"],
            publish_rm=["80"],
            constraint_add=["node.labels.zone==a"],
            constraint_rm=["node.role==worker"],
        ),
    )
    assert spec.env == ("B=3", "C=4")
    assert spec.labels == {"tier": "back"}
    assert spec.ports == (PortSpec(90, 9090),)
    assert spec.constraints == ("node.labels.zone==a",)


def test_options_left_out_leave_the_spec_as_it_was() -> None:
    assert updated_spec(SPEC, Changes()) == SPEC


def test_a_health_option_changes_that_value_only() -> None:
    spec = updated_spec(SPEC, Changes(health_retries=5))
    assert spec.health == HealthCheck(command="true", interval=2.0, retries=5)
    assert updated_spec(SPEC, Changes(no_healthcheck=True)).health == HealthCheck(disabled=True)


def test_policy_options_change_the_policy_and_are_checked() -> None:
    spec = updated_spec(
        SPEC,
        Changes(
            update=PolicyOptions(
                parallelism=2,
                delay="1m",
                failure_action="rollback",
                order="start-first",
                max_failure_ratio="0.5",
            ),
            rollback=PolicyOptions(monitor="10s"),
        ),
    )
    assert spec.update == UpdatePolicy(
        2, 60.0, 5.0, FailureAction.ROLLBACK, 0.5, UpdateOrder.START_FIRST
    )
    assert spec.rollback == UpdatePolicy(monitor=10.0)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (Changes(image="Bad:Image"), "image 'Bad:Image': invalid reference format"),
        (Changes(env_add=["novalue"]), "--env 'novalue': expected KEY=VALUE"),
        (Changes(replicas=-1), "--replicas -1: must be 0 or more"),
        (
            Changes(rollback=PolicyOptions(failure_action="rollback")),
            "--rollback-failure-action 'rollback': use pause or continue",
        ),
        (
            Changes(update=PolicyOptions(max_failure_ratio="2")),
            "--update-max-failure-ratio '2': expected a number from 0 to 1",
        ),
        (Changes(update=PolicyOptions(order="random")), "--update-order 'random': use stop-first"),
        (Changes(reserve_cpu="0.5", limit_cpu="0.25"), "--reserve-cpu is more than --limit-cpu"),
    ],
)
def test_bad_update_options_are_refused_naming_the_option(changes: Changes, error: str) -> None:
    with pytest.raises(SwarmctlError) as raised:
        updated_spec(SPEC, changes)
    assert error in str(raised.value)


def test_create_takes_the_policies_too() -> None:
    spec = build_spec(name="web", image="nginx", update=PolicyOptions(order="start-first"))
    assert spec.update.order == UpdateOrder.START_FIRST and spec.rollback == UpdatePolicy()


def updated_service() -> Service:
    return Service(
        "svc",
        updated_spec(SPEC, Changes(image="busybox")),
        "2026-01-01T00:00:00.000+00:00",
        "2026-01-01T00:01:00.000+00:00",
        version=3,
        previous_spec=SPEC,
        update_status=UpdateStatus(
            UpdateState.PAUSED,
            "2026-01-01T00:01:00.000+00:00",
            message="update paused due to failure of task web.1",
            spec_version=3,
        ),
    )


def test_an_update_round_trips_through_the_state_file_and_old_records_still_load() -> None:
    service = updated_service()
    document = to_json(service)
    check_documents({"services": {"1": document}}, Path("state.json"), "")
    assert from_json(Service, document) == service
    old = to_json(Service("svc", SPEC, "t", "t"))
    for key in ("previous_spec", "update_status"):
        del old[key]
    for key in ("update", "rollback"):
        del old["spec"][key]
    check_documents({"services": {"1": old}}, Path("state.json"), "")
    assert from_json(Service, old) == Service("svc", SPEC, "t", "t")


def test_a_wrong_update_status_is_refused_naming_the_field() -> None:
    document = to_json(updated_service())
    document["update_status"]["state"] = "exploded"
    with pytest.raises(SwarmctlError) as raised:
        check_documents({"services": {"1": document}}, Path("state.json"), "")
    assert "update_status.state" in str(raised.value)


def test_inspect_shows_the_policies_previous_spec_and_update_status_as_swarm() -> None:
    shown = inspect_json(updated_service(), [])
    assert shown["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "busybox"
    assert shown["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "nginx"
    assert shown["Spec"]["UpdateConfig"] == {
        "Parallelism": 1,
        "FailureAction": "pause",
        "Monitor": 5_000_000_000,
        "MaxFailureRatio": 0.0,
        "Order": "stop-first",
    }
    assert shown["UpdateStatus"] == {
        "State": "paused",
        "StartedAt": "2026-01-01T00:01:00.000+00:00",
        "Message": "update paused due to failure of task web.1",
    }
    assert "PreviousSpec" not in inspect_json(Service("svc", SPEC, "t", "t"), [])


def test_inspect_pretty_shows_the_update_status_and_policies(capsys) -> None:
    from swarmctl.cli.service import _pretty

    _pretty(updated_service(), [])
    out = capsys.readouterr().out
    assert "UpdateStatus:\n State:         paused\n" in out
    assert " Message:       update paused due to failure of task web.1" in out
    assert "UpdateConfig:\n Parallelism:   1\n On failure:    pause\n" in out
    assert "RollbackConfig:" in out


def test_inspect_pretty_lists_secrets_configs_and_mounts_as_docker_does(capsys) -> None:
    from swarmctl.cli.service import _pretty

    spec = replace(
        SPEC,
        secrets=(FileRef("db_password", "db_pw", uid="999", mode=0o400),),
        configs=(FileRef("nginx_conf", "/etc/nginx/nginx.conf"),),
        mounts=(MountSpec("volume", "data", "/data", readonly=True),),
    )
    _pretty(Service("svc", spec, "t", "t"), [])
    out = capsys.readouterr().out
    assert " Secrets:\n  Target:       db_pw\n   Source:      db_password\n" in out
    assert " Configs:\n  Target:       /etc/nginx/nginx.conf\n   Source:      nginx_conf\n" in out
    assert (
        "Mounts:\n Target:        /data\n  Source:       data\n  ReadOnly:     true\n"
        "  Type:         volume\n"
    ) in out


def test_mounts_and_networks_are_added_and_removed() -> None:
    spec = replace(SPEC, networks=("front",), mounts=(MountSpec("volume", "data", "/data"),))
    spec = updated_spec(
        spec,
        Changes(
            mount_add=["type=bind,source=/srv,target=/srv,readonly"],
            mount_rm=["/data"],
            network_add=["back"],
            network_rm=["front"],
        ),
    )
    assert spec.mounts == (MountSpec("bind", "/srv", "/srv", readonly=True),)
    assert spec.networks == ("back",)
    with pytest.raises(SwarmctlError, match="--network 'b a d'"):
        updated_spec(spec, Changes(network_add=["b a d"]))


def test_a_stop_grace_period_and_signal_are_read_as_docker_reads_them() -> None:
    default = build_spec(name="web", image="nginx")
    assert (default.stop_grace_period, default.stop_signal) == (10.0, "")
    given = build_spec(name="web", image="nginx", stop_grace_period="1m30s", stop_signal="USR1")
    assert (given.stop_grace_period, given.stop_signal) == (90.0, "USR1")
    # docker's --stop-timeout takes whole seconds: a fraction is rounded up, never down
    assert build_spec(name="w", image="nginx", stop_grace_period="1500ms").stop_grace_period == 2
    changed = updated_spec(given, Changes(stop_grace_period="0s"))
    assert (changed.stop_grace_period, changed.stop_signal) == (0.0, "USR1")
    assert updated_spec(given, Changes(stop_signal="SIGRTMIN+3")).stop_signal == "SIGRTMIN+3"
    shown = inspect_json(Service("s", given, "", ""), [])
    container = shown["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert (container["StopGracePeriod"], container["StopSignal"]) == (90_000_000_000, "USR1")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            Changes(stop_grace_period="soon"),
            "--stop-grace-period 'soon': expected a duration like 5s, 1m30s or 500ms",
        ),
        (
            Changes(stop_signal="KILL;rm"),
            "--stop-signal 'KILL;rm': expected a signal name like SIGTERM or SIGUSR1, "
            "or a number from 1 to 64",
        ),
        (Changes(stop_signal="99"), "--stop-signal '99'"),
    ],
)
def test_a_bad_stop_option_is_refused_naming_it(changes: Changes, error: str) -> None:
    with pytest.raises(SwarmctlError) as raised:
        updated_spec(SPEC, changes)
    assert error in str(raised.value)
