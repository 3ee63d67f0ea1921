"""Properties of the RestateDeployment builders over any valid spec (`tests/specs.py`), not a few
hand-picked ones: the version hash is a pure function of what it documents (stable across key
order, copies and re-serialisation; blind to replicas and the resource's own annotations), names
stay DNS-1035 labels of at most 63 characters, and every selector selects the pods it is for.
The apiserver's own verdict on a sample of the same objects: `tests/integration/test_builder_dry_run.py`.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.builders import deployment as build
from tests.specs import deployments

Obj = dict[str, Any]
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PROPERTIES = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same document with every mapping's keys in another order (what a round trip through
    another client or the apiserver may do)."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@PROPERTIES
@given(deployments(), st.randoms(use_true_random=False), st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_the_version_hash_is_stable_across_key_order_copies_and_json(
    rsd: Obj, rng: random.Random, collisions: int | None
) -> None:
    expected = build.version_hash(rsd, collisions)
    assert build.version_hash(copy.deepcopy(rsd), collisions) == expected
    assert build.version_hash(shuffled(rsd, rng), collisions) == expected
    assert build.version_hash(json.loads(json.dumps(rsd)), collisions) == expected


@PROPERTIES
@given(deployments(), st.integers(0, 1000))
def test_the_version_hash_ignores_what_does_not_make_a_version(rsd: Obj, replicas: int) -> None:
    """Scaling or annotating the resource must never roll out a new version."""
    expected = build.version_hash(rsd)
    other = copy.deepcopy(rsd)
    other["spec"]["replicas"] = replicas
    other["metadata"]["annotations"] = {"note": "changed"}
    other["spec"]["minReadySeconds"] = 5
    assert build.version_hash(other) == expected


@PROPERTIES
@given(deployments())
def test_a_new_image_is_a_new_version(rsd: Obj) -> None:
    other = copy.deepcopy(rsd)
    other["spec"]["template"]["spec"]["containers"][0]["image"] += "-next"
    assert build.version_hash(other) != build.version_hash(rsd)


@PROPERTIES
@given(deployments(), st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_version_names_are_dns_1035_labels_of_at_most_63_characters(rsd: Obj, collisions: int | None) -> None:
    name = build.version_name(rsd, build.version_hash(rsd, collisions))
    assert len(name) <= 63
    assert DNS_1035.match(name), name


def selects(selector: Obj, pod_labels: dict[str, str]) -> bool:
    return all(pod_labels.get(k) == v for k, v in selector.items())


@PROPERTIES
@given(deployments())
def test_every_selector_selects_exactly_its_versions_pods(rsd: Obj) -> None:
    hash_ = build.version_hash(rsd)
    rs = build.replica_set(rsd, hash_, replicas=1)
    pod_labels = rs["spec"]["template"]["metadata"]["labels"]
    assert selects(rs["spec"]["selector"]["matchLabels"], pod_labels)
    service = build.version_service(rsd, hash_, "uid-1")
    assert selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["selector"][build.HASH_LABEL] == hash_, "never another version's pods"
    other = build.version_hash({**rsd, "spec": {**rsd["spec"], "restate": {"register": {"cluster": "zz-other"}}}})
    if other != hash_:
        assert not selects(service["spec"]["selector"], {**pod_labels, build.HASH_LABEL: other})


@PROPERTIES
@given(deployments())
def test_the_replica_set_keeps_the_template_as_written(rsd: Obj) -> None:
    """The stored template annotation reads back as the template (upstream compares it to adopt)."""
    rs = build.replica_set(rsd, build.version_hash(rsd), replicas=1)
    stored = json.loads(rs["metadata"]["annotations"][build.TEMPLATE_ANNOTATION])
    assert stored["spec"] == rsd["spec"]["template"]["spec"]
    assert rs["spec"]["template"]["spec"] == rsd["spec"]["template"]["spec"]
    json.dumps(rs, ensure_ascii=False)  # plain JSON all the way down
