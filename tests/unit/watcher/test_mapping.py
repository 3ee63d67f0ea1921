"""Which events the watcher forwards, to which key, under which idempotency key."""

from __future__ import annotations

from typing import Any

import pytest

from watcher import mapping
from watcher.mapping import Forward, Target


def rce(**meta: Any) -> dict[str, Any]:
    base = {"name": "env", "uid": "u1", "resourceVersion": "5", "generation": 1}
    return {"apiVersion": "restate.dev/v1beta1", "kind": "RestateCloudEnvironment", "metadata": {**base, **meta}}


def owned_by(kind: str, api_version: str = "restate.dev/v1beta1", *, controller: bool = True) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "tunnel-env",
            "namespace": "ops",
            "uid": "c1",
            "resourceVersion": "9",
            "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": "owner", "controller": controller}],
        },
    }


def test_cluster_scoped_resource_is_keyed_by_name_and_namespaced_by_namespace_slash_name() -> None:
    assert mapping.primary_target(rce()) == Target("RestateCloudEnvironment", "env")
    rsd = {"kind": "RestateDeployment", "metadata": {"name": "svc", "namespace": "team"}}
    assert mapping.primary_target(rsd) == Target("RestateDeployment", "team/svc")


def test_service_names_avoid_restates_reserved_prefix() -> None:
    assert Target("RestateCloudEnvironment", "env").service == "CloudEnvironmentReconciler"
    assert Target("RestateDeployment", "a/b").service == "DeploymentReconciler"


def test_status_only_changes_keep_the_fingerprint() -> None:
    before, after = rce(), rce(resourceVersion="6")
    after["status"] = {"conditions": []}
    assert mapping.fingerprint(before) == mapping.fingerprint(after)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"generation": 2}, id="spec"),
        pytest.param({"labels": {"a": "b"}}, id="labels"),
        pytest.param({"annotations": {"a": "b"}}, id="annotations"),
        pytest.param({"finalizers": []}, id="our-finalizer-removed"),
        pytest.param({"deletionTimestamp": "2026-01-01T00:00:00Z"}, id="deletion"),
    ],
)
def test_changes_a_reconcile_depends_on_are_news(change: dict[str, Any]) -> None:
    before = mapping.fingerprint(rce(finalizers=[FINALIZER]))
    after = mapping.fingerprint(rce(**{"finalizers": [FINALIZER], **change}))
    assert mapping.primary_news(before, after)


FINALIZER = "cloudenvironments.restate.dev"


def test_our_finalizer_appearing_alone_is_the_echo_of_our_own_write() -> None:
    before, after = mapping.fingerprint(rce()), mapping.fingerprint(rce(finalizers=[FINALIZER]))
    assert not mapping.primary_news(before, after)
    assert mapping.primary_news(before, mapping.fingerprint(rce(finalizers=[FINALIZER], generation=2)))
    assert mapping.primary_news(None, after)  # first sight: always


def test_someone_elses_finalizer_is_not_news() -> None:
    before = mapping.fingerprint(rce(finalizers=[FINALIZER]))
    assert not mapping.primary_news(before, mapping.fingerprint(rce(finalizers=[FINALIZER, "x"])))


def test_child_maps_to_its_controlling_owner_of_a_watched_kind() -> None:
    kinds = ("RestateCloudEnvironment", "RestateDeployment")
    assert mapping.owner_target(owned_by("RestateCloudEnvironment"), kinds) == Target(
        "RestateCloudEnvironment", "owner"
    )
    assert mapping.owner_target(owned_by("RestateDeployment"), kinds) == Target("RestateDeployment", "ops/owner")


@pytest.mark.parametrize(
    "child",
    [
        pytest.param(owned_by("RestateCluster"), id="kind-not-watched"),
        pytest.param(owned_by("Deployment", "apps/v1"), id="foreign-owner"),
        pytest.param(owned_by("RestateCloudEnvironment", controller=False), id="not-controller"),
    ],
)
def test_children_of_others_are_ignored(child: dict[str, Any]) -> None:
    assert mapping.owner_target(child, ("RestateCloudEnvironment",)) is None


def test_event_keys_name_the_object_version() -> None:
    assert mapping.event_key(rce(), "spec") == "spec:u1:5"
    assert mapping.event_key(rce(resourceVersion="6"), "spec") != mapping.event_key(rce(), "spec")


def test_resync_moments_spread_resources_over_the_period_and_every_replica_agrees() -> None:
    targets = [Target("RestateDeployment", f"ns/app-{i}") for i in range(500)]
    offsets = [mapping.resync_offset(t, 300.0) for t in targets]
    assert all(0 <= o < 300 for o in offsets)
    per_minute = [sum(1 for o in offsets if m * 60 <= o < (m + 1) * 60) for m in range(5)]
    assert all(70 <= n <= 130 for n in per_minute), f"about 100 a minute, not a burst: {per_minute}"
    assert mapping.resync_offset(Target("RestateDeployment", "ns/app-0"), 300.0) == offsets[0]  # stable
    assert mapping.resync_slot(1000.0, 300.0, 100.0) == mapping.resync_slot(1299.0, 300.0, 100.0) == 3
    assert mapping.resync_slot(1300.0, 300.0, 100.0) == 4


def test_merge_keeps_the_stronger_reason_and_the_newest_trigger() -> None:
    target = Target("RestateCloudEnvironment", "env")
    child = Forward(target, "child", "Deployment@9", "child:c1:9")
    spec = Forward(target, "spec", "RestateCloudEnvironment@6", "spec:u1:6")
    merged = mapping.merge(child, spec)
    assert (merged.reason, merged.trigger) == ("child", "RestateCloudEnvironment@6")
    assert mapping.merge(spec, child).reason == "child"
    assert mapping.merge(None, spec) == spec
    assert mapping.merge(spec, spec) == spec  # the same event seen twice stays one forward


def test_merged_forward_gets_a_key_of_its_own() -> None:
    """After a relist, an unchanged child (old key) merged with a new spec change must not be deduplicated."""
    target = Target("RestateCloudEnvironment", "env")
    relisted_child = Forward(target, "child", "Deployment@9", "child:c1:9")  # forwarded before the restart
    changed_spec = Forward(target, "spec", "RestateCloudEnvironment@7", "spec:u1:7")
    merged = mapping.merge(changed_spec, relisted_child)
    assert merged.idempotency_key not in {"child:c1:9", "spec:u1:7"}
    assert merged == mapping.merge(changed_spec, relisted_child)  # deterministic


def test_resync_forwards_each_known_resource_once_a_period_at_its_own_moment() -> None:
    from watcher.settings import WatcherSettings
    from watcher.supervisor import Watcher

    submitted: list[Forward] = []

    class Recorder:
        def submit(self, forward: Forward) -> None:
            submitted.append(forward)

    watcher = Watcher(WatcherSettings(resync_seconds=300), Recorder())
    watcher.on_primary("ADDED", rce())
    watcher.on_primary("MODIFIED", rce(resourceVersion="6", uid="u1"))  # status-only: not forwarded again
    other = rce(name="other", uid="u2")
    watcher.on_primary("ADDED", other)
    watcher.on_primary("DELETED", other)
    assert [f.reason for f in submitted] == ["spec", "spec"]
    submitted.clear()
    env = Target("RestateCloudEnvironment", "env")
    moment = 3000.0 + mapping.resync_offset(env, 300.0)
    for tick in range(600):  # two periods in 1 s ticks, as the resync loop runs them
        watcher.resync(moment - 300 + tick - 1, moment - 300 + tick)
    assert [(f.target.key, f.reason) for f in submitted] == [("env", "resync"), ("env", "resync")]
    assert [f.idempotency_key for f in submitted] == ["resync:9", "resync:10"]
    submitted.clear()
    watcher.resync(moment - 0.5, moment + 0.25)  # another replica, ticking at other instants
    assert [f.idempotency_key for f in submitted] == ["resync:10"], "the same key: Restate runs it once"


async def test_a_replicas_first_resyncs_come_in_its_second_period_spread_over_it() -> None:
    from watcher.settings import WatcherSettings
    from watcher.supervisor import Watcher, resync_loop

    resynced: dict[str, list[float]] = {}
    clock = [1000.0]

    class Recorder:
        def submit(self, forward: Forward) -> None:
            resynced.setdefault(forward.target.key, []).append(clock[0] - 1000.0)

    class ThreePeriods(Exception):
        pass

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        if clock[0] > 1000.0 + 3 * 300:
            raise ThreePeriods

    watcher = Watcher(WatcherSettings(resync_seconds=300), Recorder())
    for i in range(50):
        watcher.known[f"u{i}"] = Target("RestateDeployment", f"ns/app-{i}")
    with pytest.raises(ThreePeriods):
        await resync_loop(watcher, clock=lambda: clock[0], sleep=sleep)
    assert len(resynced) == 50
    for times in resynced.values():
        assert len(times) == 2, "once in each period after the first"
        assert 300 < times[0] <= 600
        assert times[1] - times[0] == pytest.approx(300, abs=1.01)
    firsts = sorted(times[0] for times in resynced.values())
    assert firsts[-1] - firsts[0] > 150, "spread over the period, not all at once"


def labelled(kind: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "x", "namespace": namespace, "labels": labels}}


@pytest.mark.parametrize("kind", ["Pod", "PersistentVolumeClaim"])
def test_cluster_pods_and_claims_map_to_their_cluster_by_label(kind: str) -> None:
    _, target_of = mapping.LABELLED[kind]
    member = {"app.kubernetes.io/name": "restate", "app.kubernetes.io/instance": "prod"}
    assert target_of(labelled(kind, "prod", member)) == Target("RestateCluster", "prod")
    assert target_of(labelled(kind, "elsewhere", member)) is None, "a RestateCluster's members live in its namespace"


def test_version_endpoint_slices_map_to_their_deployment_by_the_copied_service_label() -> None:
    _, target_of = mapping.LABELLED["EndpointSlice"]
    slice_ = labelled("EndpointSlice", "team", {"restate.dev/owned-by": "svc", "kubernetes.io/service-name": "svc-4b5"})
    assert target_of(slice_) == Target("RestateDeployment", "team/svc")
    assert target_of(labelled("EndpointSlice", "team", {"kubernetes.io/service-name": "other"})) is None
    stable = labelled("EndpointSlice", "team", {"restate.dev/owned-by": "svc", "kubernetes.io/service-name": "svc"})
    assert target_of(stable) is None  # the stable Service's: no reconcile reads them


def test_labelled_watches_select_only_what_their_mapping_can_use() -> None:
    assert mapping.LABELLED["Pod"][0] == mapping.CLUSTER_MEMBER_SELECTOR
    assert "restate.dev/owned-by" in mapping.LABELLED["EndpointSlice"][0]


def rsd(name: str, register: dict[str, str], uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": "1", "generation": 1},
        "spec": {"restate": {"register": register}},
    }


def test_references_name_the_register_target_and_the_token_secret() -> None:
    assert mapping.references(rsd("a", {"cluster": "prod"}, "r1")) == {("RestateCluster", "prod")}
    assert mapping.references(rsd("a", {"cloud": "env"}, "r1")) == {("RestateCloudEnvironment", "env")}
    assert mapping.references(rsd("a", {"url": "http://r:9070"}, "r1")) == frozenset()
    token = {**rce(), "spec": {"authentication": {"secret": {"name": "cloud-token", "key": "token"}}}}
    assert mapping.references(token) == {("Secret", "cloud-token")}


def test_a_secret_reaches_its_environments_and_the_deployments_registering_through_them() -> None:
    env, other = Target("RestateCloudEnvironment", "env"), Target("RestateCloudEnvironment", "other")
    greeter, billing = Target("RestateDeployment", "shop/greeter"), Target("RestateDeployment", "shop/billing")
    refs = {
        env: frozenset({("Secret", "cloud-token")}),
        other: frozenset({("Secret", "other-token")}),
        greeter: frozenset({("RestateCloudEnvironment", "env")}),
        billing: frozenset({("RestateCloudEnvironment", "other")}),
    }
    assert mapping.dependants(refs, ("Secret", "cloud-token")) == {env, greeter}
    assert mapping.dependants(refs, ("RestateCloudEnvironment", "other")) == {billing}
    assert mapping.dependants(refs, ("Secret", "unrelated")) == set()


def test_dependants_look_again_when_what_they_name_appears_goes_or_turns_ready() -> None:
    from watcher.settings import WatcherSettings
    from watcher.supervisor import Watcher

    submitted: list[Forward] = []

    class Recorder:
        def submit(self, forward: Forward) -> None:
            submitted.append(forward)

    watcher = Watcher(WatcherSettings(), Recorder())
    watcher.on_primary("ADDED", rsd("greeter", {"cloud": "env"}, "r1"))
    submitted.clear()
    env = {**rce(), "spec": {"authentication": {"secret": {"name": "cloud-token", "key": "token"}}}}
    watcher.on_primary("ADDED", env)  # appeared: the deployment waiting for it looks again
    assert {(f.target.key, f.reason) for f in submitted} == {("env", "spec"), ("shop/greeter", "child")}
    submitted.clear()
    ready = {**env, "metadata": {**env["metadata"], "resourceVersion": "6"}, "status": {"conditions": []}}
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    watcher.on_primary("MODIFIED", ready)  # turned Ready (status only): dependants only
    assert [(f.target.key, f.reason) for f in submitted] == [("shop/greeter", "child")]
    submitted.clear()
    watcher.on_primary("MODIFIED", {**ready, "metadata": {**ready["metadata"], "resourceVersion": "7"}})
    assert submitted == []  # another status write: nobody cares
    secret = {"metadata": {"name": "cloud-token", "namespace": "restate-operator", "uid": "s1", "resourceVersion": "8"}}
    watcher.on_secret("MODIFIED", secret)  # rotated: the environment and its deployment look again
    assert {f.target.key for f in submitted} == {"env", "shop/greeter"}
    submitted.clear()
    watcher.on_primary("DELETED", ready)
    assert [(f.target.key, f.reason) for f in submitted] == [("shop/greeter", "child")]
