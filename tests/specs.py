"""Hypothesis strategies for valid RestateDeployment specs, shared by the builders' property tests
(`tests/unit/services/test_builder_properties.py`) and their server dry run
(`tests/integration/test_builder_dry_run.py`).

"Valid" means what admission accepts and a user may plausibly write: DNS-label names, label keys
with and without a prefix, unicode in annotation and env values, 0-3 containers' worth of ports,
optional selector (a subset of the template's labels), servicePath, useHttp11, every register
target. Not generated: volumes, probes, affinity (passed through untouched by the builders).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from services.models.deployment import MAX_NAME_LENGTH

Obj = dict[str, Any]

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def dns_label(max_size: int = 63, *, letter_first: bool = False) -> st.SearchStrategy[str]:
    """A DNS-1123 label (DNS-1035 with `letter_first`): lowercase alphanumerics and inner dashes."""
    first = st.sampled_from(_ALNUM[:26] if letter_first else _ALNUM)
    middle = st.text(alphabet=_ALNUM + "-", max_size=max(0, max_size - 2))
    last = st.sampled_from(_ALNUM)
    return st.one_of(
        first,
        st.builds(lambda a, m, z: a + m + z, first, middle, last),
    ).filter(lambda s: len(s) <= max_size)


label_value = st.one_of(st.just(""), st.text(alphabet=_ALNUM + "-_.", min_size=1, max_size=63)).filter(
    lambda v: v == "" or (v[0].isalnum() and v[-1].isalnum())
)
label_key = st.one_of(
    dns_label(40),
    st.builds(lambda p, n: f"{p}.example.com/{n}", dns_label(20), dns_label(30)),
)
label_map = st.dictionaries(label_key, label_value, min_size=1, max_size=4)
# Annotation values are free text: unicode, emoji, newlines.
annotation_map = st.dictionaries(label_key, st.text(max_size=40), max_size=3)

image = st.builds(
    lambda repo, tag: f"registry.example.com/{repo}:{tag}",
    dns_label(30),
    st.text(alphabet=_ALNUM + "._-", min_size=1, max_size=20).filter(lambda t: t[0].isalnum()),
)
# An IANA service name: at most 15 characters, a letter first, no consecutive hyphens.
port_name = st.lists(st.text(alphabet=_ALNUM, min_size=1, max_size=5), min_size=1, max_size=3).map(
    lambda parts: ("p" + "-".join(parts))[:15].rstrip("-")
)
port = st.fixed_dictionaries(
    {"containerPort": st.integers(1, 65535)},
    optional={"name": port_name, "protocol": st.sampled_from(["TCP", "UDP"])},
)
env_var = st.fixed_dictionaries(
    {"name": st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,20}\Z"), "value": st.text(max_size=30)},
)


@st.composite
def containers(draw: st.DrawFn) -> list[Obj]:
    count = draw(st.integers(1, 3))
    names = draw(st.lists(dns_label(20), min_size=count, max_size=count, unique=True))
    out = []
    for name in names:
        container: Obj = {"name": name, "image": draw(image)}
        ports = draw(st.lists(port, max_size=2, unique_by=lambda p: (p["containerPort"], p.get("protocol", "TCP"))))
        named = [p for p in ports if "name" in p]
        if len({p["name"] for p in named}) == len(named) and ports:
            container["ports"] = ports
        if envs := draw(st.lists(env_var, max_size=3, unique_by=lambda e: e["name"])):
            container["env"] = envs
        out.append(container)
    return out


register = st.one_of(
    st.builds(lambda c: {"cluster": c}, dns_label(30)),
    st.builds(lambda n, ns: {"service": {"name": n, "namespace": ns}}, dns_label(30), dns_label(30)),
    st.just({"url": "http://restate.restate.svc:9070"}),
)


@st.composite
def deployments(draw: st.DrawFn, namespace: str = "default") -> Obj:
    """A valid RestateDeployment, as the apiserver would return it (no defaults filled in)."""
    pod_labels = draw(label_map)
    spec: Obj = {
        "replicas": draw(st.integers(0, 50)),
        "template": {
            "metadata": {"labels": pod_labels, **({"annotations": a} if (a := draw(annotation_map)) else {})},
            "spec": {"containers": draw(containers())},
        },
        "restate": {"register": draw(register)},
    }
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(sorted(pod_labels)), min_size=1, unique=True))
        spec["selector"] = {"matchLabels": {k: pod_labels[k] for k in keys}}
    if draw(st.booleans()):
        spec["restate"]["servicePath"] = "/" + draw(dns_label(20))
    if draw(st.booleans()):
        spec["restate"]["useHttp11"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["minReadySeconds"] = draw(st.integers(0, 600))
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {
            "name": draw(dns_label(MAX_NAME_LENGTH, letter_first=True)),
            "namespace": namespace,
            "uid": "0a1b2c3d-0000-4000-8000-000000000000",
            **({"annotations": a} if (a := draw(annotation_map)) else {}),
        },
        "spec": spec,
    }
