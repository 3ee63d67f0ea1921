"""Pure parts of the pod runner: which pods get a process, and which names resolve where."""

from __future__ import annotations

from typing import Any

import pytest

from devstack import hosts, images
from devstack.pod_runner import host_entries, plan_pod, plan_restate_job

TABLE = {"img/hello:1": ["python", "-m", "hello"]}


def pod(
    name: str,
    *,
    image: str = "img/hello:1",
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    ports: list[int] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "c",
        "image": image,
        "env": [
            {"name": "GREETING", "value": "hi"},
            {"name": "FROM_SECRET", "value": None, "value_from": {}},
        ],
    }
    if ports is not None:
        container["ports"] = [{"container_port": p} for p in ports]
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": labels or {},
            "deletion_timestamp": "2026-01-01T00:00:00Z" if deleting else None,
        },
        "spec": {"node_name": "kwok-node-0", "containers": [container], **spec},
        "status": {"phase": phase},
    }


def service(name: str, selector: dict[str, str] | None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"selector": selector}}


def test_running_pod_with_known_image_gets_a_plan_with_literal_env_and_first_port() -> None:
    plan = plan_pod(pod("a", ports=[9090, 9091]), TABLE)
    assert plan is not None
    assert plan.key == ("ns", "a", "uid-a")
    assert plan.argv == ["python", "-m", "hello"]
    assert plan.env == {"GREETING": "hi"}
    assert plan.port == 9090


def test_port_defaults_to_9080_without_container_ports() -> None:
    plan = plan_pod(pod("a"), TABLE)
    assert plan is not None
    assert plan.port == 9080


@pytest.mark.parametrize(
    "candidate",
    [
        pytest.param(pod("a", image="other:1"), id="unknown-image"),
        pytest.param(pod("a", phase="Pending"), id="not-running"),
        pytest.param(pod("a", deleting=True), id="being-deleted"),
    ],
)
def test_pods_that_are_not_ours_to_run_get_no_plan(candidate: dict[str, Any]) -> None:
    assert plan_pod(candidate, TABLE) is None


def test_service_resolves_to_first_selected_pod_with_a_process() -> None:
    pods = [pod("b", labels={"app": "x"}), pod("a", labels={"app": "x"}), pod("c", labels={"app": "y"})]
    addresses = {("ns", "a", "uid-a"): "127.9.0.1", ("ns", "b", "uid-b"): "127.9.0.2"}
    entries = host_entries(
        [service("x", {"app": "x"}), service("y", {"app": "y"}), service("none", None)], pods, addresses
    )
    assert entries == {"x.ns.svc.cluster.local": "127.9.0.1", "x.ns.svc": "127.9.0.1", "x.ns": "127.9.0.1"}


def test_service_moves_to_the_first_pod_whose_process_serves() -> None:
    pods = [pod(f"restate-{n}", labels={"app": "r"}) for n in range(3)]
    addresses = {("ns", f"restate-{n}", f"uid-restate-{n}"): f"127.9.0.{n + 1}" for n in range(3)}
    services = [service("restate", {"app": "r"})]
    everyone = set(addresses)
    assert host_entries(services, pods, addresses, everyone)["restate.ns"] == "127.9.0.1"
    restate_0_died = everyone - {("ns", "restate-0", "uid-restate-0")}
    assert host_entries(services, pods, addresses, restate_0_died)["restate.ns"] == "127.9.0.2"
    assert host_entries(services, pods, addresses, set())["restate.ns"] == "127.9.0.1", "resolves in an outage"


def job_pod(name: str, command: list[str]) -> dict[str, Any]:
    candidate = pod(name, image="restate:1", phase="Succeeded")
    candidate["metadata"]["owner_references"] = [{"kind": "Job", "name": "restate-provision"}]
    candidate["spec"]["containers"][0]["command"] = command
    return candidate


def test_restate_job_pod_runs_its_command_with_restatectl_whatever_its_phase_and_never_a_node() -> None:
    candidate = job_pod("restate-provision-x", ["sh", "-c", "restatectl provision"])
    plan = plan_restate_job(candidate, {"restate:1"})
    assert plan is not None
    assert plan.argv == ["sh", "-c", "restatectl provision"]
    assert plan.env["PATH"].split(":")[0].endswith("/restatectl-linux-x64/bin")
    candidate["status"]["phase"] = "Running"
    assert plan_pod(candidate, TABLE, {"restate:1"}) is None, "no restate-server for the Job's pod"
    assert plan_restate_job(pod("restate-0", image="restate:1"), {"restate:1"}) is None, "a node is no Job"
    assert plan_restate_job(job_pod("other", ["sh"]), {"other:1"}) is None, "only the restate image"


def test_statefulset_pod_gets_its_stable_dns_name() -> None:
    pods = [pod("restate-0", hostname="restate-0", subdomain="restate-cluster")]
    entries = host_entries([], pods, {("ns", "restate-0", "uid-restate-0"): "127.9.0.7"})
    assert entries == {
        "restate-0.restate-cluster.ns.svc.cluster.local": "127.9.0.7",
        "restate-0.restate-cluster": "127.9.0.7",
    }


def test_env_resolves_the_downward_api_and_expands_references() -> None:
    candidate = pod("restate-0")
    candidate["spec"]["containers"][0]["env"] = [
        {"name": "POD_NAME", "value_from": {"field_ref": {"field_path": "metadata.name"}}},
        {"name": "ZONE", "value_from": {"field_ref": {"field_path": "metadata.labels['zone']"}}},
        {"name": "ADDRESS", "value": "http://$(POD_NAME).restate-cluster:5122"},
        {"name": "UNKNOWN", "value": "$(NOPE)"},
    ]
    plan = plan_pod(candidate, TABLE)
    assert plan is not None
    assert plan.env == {
        "POD_NAME": "restate-0",
        "ADDRESS": "http://restate-0.restate-cluster:5122",
        "UNKNOWN": "$(NOPE)",
    }


def test_restate_images_run_restate_server_with_their_config_map() -> None:
    candidate = pod("restate-0", image="restate:1")
    candidate["spec"]["volumes"] = [{"name": "config", "config_map": {"name": "restate-config-abc"}}]
    plan = plan_pod(candidate, TABLE, {"restate:1"})
    assert plan is not None
    assert plan.restate_server
    assert plan.config_map == "restate-config-abc"
    assert plan.argv[0].endswith("restate-server")


def test_knative_revision_pod_runs_its_user_container_and_ignores_queue_proxy() -> None:
    """Knative's Deployment puts the user container first, renames its port and passes PORT; queue-proxy follows."""
    candidate = pod("svc-00001-deployment-abc", image=f"{images.VERSIONED_IMAGE}:v1", ports=[9080])
    user = candidate["spec"]["containers"][0]
    user["name"] = "user-container"
    user["ports"] = [{"name": "user-port", "container_port": 9080}]
    user["env"] = [{"name": "PORT", "value": "9080"}, {"name": "K_REVISION", "value": "svc-00001"}]
    queue = {
        "name": "queue-proxy",
        "image": "restate-operator.local/knative/queue-proxy:v0.42.2",
        "ports": [{"name": "http-queueadm", "container_port": 8022}, {"name": "queue-port", "container_port": 8012}],
        "env": [{"name": "USER_PORT", "value": "9080"}],
    }
    for containers in ([user, queue], [queue, user]):
        candidate["spec"]["containers"] = containers
        plan = plan_pod(candidate, images.IMAGES, images.RESTATE_IMAGES)
        assert plan is not None
        assert plan.container["name"] == "user-container"
        assert plan.argv[-3:] == ["examples.versioned", "--version", "v1"]
        assert (plan.port, plan.env["PORT"]) == (9080, "9080")


def test_hosts_file_is_rewritten_in_place_and_keeps_the_base(tmp_path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    inode = path.stat().st_ino
    assert hosts.write_in_place(path, {"b.ns": "127.9.0.2", "a.ns": "127.9.0.1"})
    assert path.read_text() == f"127.0.0.1 localhost\n{hosts.MARKER}\n127.9.0.1\ta.ns\n127.9.0.2\tb.ns\n"
    assert not hosts.write_in_place(path, {"a.ns": "127.9.0.1", "b.ns": "127.9.0.2"})
    assert hosts.write_in_place(path, {})
    assert path.read_text() == f"127.0.0.1 localhost\n{hosts.MARKER}\n"
    assert path.stat().st_ino == inode


def test_managed_entries_read_back_what_was_written(tmp_path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    assert hosts.entries(path) == {}
    hosts.write_in_place(path, {"a.ns": "127.9.0.1"})
    assert hosts.entries(path) == {"a.ns": "127.9.0.1"}


def test_each_writer_replaces_only_its_own_section_of_the_hosts_file(tmp_path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    hosts.write_in_place(path, {"svc.ns.svc.cluster.local": "127.9.0.1"})
    assert hosts.write_in_place(path, {"route.ns.svc.cluster.local": "127.9.0.2"}, owner="knative data plane")
    assert hosts.write_in_place(path, {"svc.ns.svc.cluster.local": "127.9.0.3"})  # the pod runner again
    assert hosts.entries(path, owner="knative data plane") == {"route.ns.svc.cluster.local": "127.9.0.2"}
    assert hosts.entries(path) == {"svc.ns.svc.cluster.local": "127.9.0.3", "route.ns.svc.cluster.local": "127.9.0.2"}
    assert path.read_text() == (
        f"127.0.0.1 localhost\n{hosts.MARKER}\n127.9.0.3\tsvc.ns.svc.cluster.local\n"
        f"{hosts.marker('knative data plane')}\n127.9.0.2\troute.ns.svc.cluster.local\n"
    )
    assert hosts.write_in_place(path, {}, owner="knative data plane")
    assert hosts.entries(path) == {"svc.ns.svc.cluster.local": "127.9.0.3"}
