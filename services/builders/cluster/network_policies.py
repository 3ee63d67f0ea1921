"""The RestateCluster's NetworkPolicies: deny by default, then allow exactly what a cluster needs.

Peer lists follow one rule: unset means nobody, `[]` means everybody, a list means those peers.
When the operator must be let in (admin API for registrations; node port for provisioning), it is
added to an unset or non-empty list, and an empty list stays empty (it already allows everyone).
"""

from __future__ import annotations

from services.builders.cluster.common import Obj, mandatory_labels, metadata, namespace_of
from services.models import cluster as models
from services.settings import Settings

NAMES = (
    "deny-all",
    "allow-egress-to-dns",
    "allow-restate-egress-to-public-internet",
    "allow-restate-egress",
    "allow-ingress-access",
    "allow-admin-access",
    "allow-metrics-access",
)
LEGACY_NAMES = ("allow-egress-to-kube-dns",)


def _policy(rsc: Obj, name: str, types: list[str], **rules: list[Obj]) -> Obj:
    """Empty rule lists are left out: the apiserver drops them, and re-applying them would loop."""
    spec: Obj = {"podSelector": {"matchLabels": mandatory_labels(rsc)}, "policyTypes": types}
    spec.update({kind: rule for kind, rule in rules.items() if rule})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(rsc, name),
        "spec": spec,
    }


def _own_pods(rsc: Obj) -> Obj:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace_of(rsc)}},
        "podSelector": {"matchLabels": mandatory_labels(rsc)},
    }


def operator_peer(settings: Settings) -> Obj | None:
    if not (settings.operator_label_name and settings.operator_label_value):
        return None
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.operator_namespace}},
        "podSelector": {"matchLabels": {settings.operator_label_name: settings.operator_label_value}},
    }


def with_peer(peers: list[Obj] | None, extra: Obj | None) -> list[Obj] | None:
    """Add `extra` to a peer list under the unset / empty / list rule."""
    if extra is None or peers == []:
        return peers
    return [*(peers or []), extra]


def _ingress_rule(port: int, peers: list[Obj] | None) -> list[Obj]:
    """No rule for unset peers; a rule without `from` for []; else a rule from those peers."""
    if peers is None:
        return []
    rule: Obj = {"ports": [{"protocol": "TCP", "port": port}]}
    if peers:
        rule["from"] = peers
    return [rule]


def network_policies(rsc: Obj, settings: Settings) -> list[Obj]:
    security = rsc["spec"].get("security") or {}
    peers = security.get("networkPeers") or {}
    operator = operator_peer(settings)
    node_peers = peers.get("node") if peers.get("node") is not None else peers.get("metrics")
    node_peers = with_peer(node_peers, _own_pods(rsc))
    if (rsc["spec"].get("cluster") or {}).get("autoProvision"):
        node_peers = with_peer(node_peers, operator)
    admin_peers = peers.get("admin")
    if models.Security.model_validate(security).allow_operator_access_to_admin:
        admin_peers = with_peer(admin_peers, operator)
    cluster_pods = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {f"allow.restate.dev/{rsc['metadata']['name']}": "true"}},
    }
    return [
        _policy(rsc, "deny-all", ["Egress", "Ingress"]),
        _policy(
            rsc,
            "allow-egress-to-dns",
            ["Egress"],
            egress=[
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        },
                        {"ipBlock": {"cidr": "169.254.20.10/32"}},
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        ),
        _policy(
            rsc,
            "allow-restate-egress-to-public-internet",
            ["Egress"],
            egress=[
                {
                    "to": [
                        {"ipBlock": {"cidr": "0.0.0.0/1", "except": ["10.0.0.0/8"]}},
                        {
                            "ipBlock": {
                                "cidr": "128.0.0.0/1",
                                "except": ["192.168.0.0/16", "172.16.0.0/12", "169.254.0.0/16"],
                            }
                        },
                    ]
                }
            ],
        ),
        _policy(
            rsc,
            "allow-restate-egress",
            ["Egress"],
            egress=[
                *(security.get("networkEgressRules") or []),
                {"to": [_own_pods(rsc)], "ports": [{"protocol": "TCP", "port": 5122}]},
                {"to": [cluster_pods]},
            ],
        ),
        _policy(rsc, "allow-ingress-access", ["Ingress"], ingress=_ingress_rule(8080, peers.get("ingress"))),
        _policy(rsc, "allow-admin-access", ["Ingress"], ingress=_ingress_rule(9070, admin_peers)),
        _policy(rsc, "allow-metrics-access", ["Ingress"], ingress=_ingress_rule(5122, node_peers)),
    ]
