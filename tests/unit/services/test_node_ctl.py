"""Reading ProvisionCluster's answer without generated stubs, and comparing it with spec.config."""

from __future__ import annotations

from services.clients import node_ctl, protowire
from services.reconcilers.cluster import config_drift


def field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def varint_field(number: int, value: int) -> bytes:
    out, key = bytearray([number << 3]), value
    while True:
        byte, key = key & 0x7F, key >> 7
        out.append(byte | (0x80 if key else 0))
        if not key:
            return bytes(out)


def test_provisioned_configuration_is_decoded() -> None:
    replication = field(1, b"{node: 2}")
    bifrost = field(1, b"replicated") + field(2, b"{node: 2}")
    config = varint_field(1, 300) + field(2, replication) + field(3, bifrost)
    response = varint_field(1, 0) + field(2, config)
    assert node_ctl.configuration(response) == {
        "numPartitions": 300,
        "partitionReplication": "{node: 2}",
        "logProvider": "replicated",
        "logReplication": "{node: 2}",
    }
    assert node_ctl.configuration(b"") == {}
    assert protowire.decode(varint_field(5, 1)) == {5: [1]}


def test_drift_names_what_differs_from_the_provisioned_cluster() -> None:
    provisioned = {"numPartitions": 2, "partitionReplication": "{node: 1}"}
    assert config_drift("default-num-partitions = 2\ndefault-replication = 1", provisioned) == []
    assert config_drift("", provisioned) == []
    assert config_drift("default-num-partitions = 4\ndefault-replication = 3", provisioned) == [
        "default-num-partitions is 4 but the cluster has 2",
        "default-replication is 3 but partitions are replicated {node: 1}",
    ]
