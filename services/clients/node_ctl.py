"""Restate's node control gRPC API, for the one call the operator makes: ProvisionCluster.

The request is `ProvisionClusterRequest{dry_run: false}` with every optional field unset, so the
node's own configuration decides partitions, replication and log provider; in protobuf that
message encodes to zero bytes, which is why no generated stubs are needed. The response is not
read for the configuration the cluster was provisioned with (ClusterConfiguration: partitions,
partition replication, log replication). ALREADY_EXISTS means a previous attempt (or someone
else) provisioned it: success, without a configuration to report.
"""

from __future__ import annotations

from typing import Any

import grpc

from services import errors
from services.clients import protowire

METHOD = "/restate.node_ctl_svc.NodeCtlSvc/ProvisionCluster"
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def configuration(response: bytes) -> dict[str, Any]:
    """ProvisionClusterResponse{2: ClusterConfiguration{1 num_partitions, 2 partition_replication{1 str},
    3 bifrost_provider{1 provider, 2 replication_property}}} -> what was provisioned (absent fields omitted)."""
    config = protowire.first_message(protowire.decode(response), 2)
    found = {
        "numPartitions": protowire.first_int(config, 1),
        "partitionReplication": protowire.first_string(protowire.first_message(config, 2), 1),
        "logProvider": protowire.first_string(protowire.first_message(config, 3), 1),
        "logReplication": protowire.first_string(protowire.first_message(config, 3), 2),
    }
    return {k: v for k, v in found.items() if v is not None}


async def provision(address: str, *, deadline: float = 30.0) -> dict[str, Any]:
    """Provision the cluster through the node at `address` (host:port, plaintext HTTP/2).

    Returns {"outcome": "provisioned" | "already-provisioned", "configuration": {...}}."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD, request_serializer=lambda _: b"", response_deserializer=lambda raw: raw)
        try:
            response: bytes = await call(None, timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.ALREADY_EXISTS:
                return {"outcome": "already-provisioned", "configuration": {}}
            message = f"ProvisionCluster at {address}: {code.name}: {exc.details()}"
            if code in TRANSIENT:
                raise errors.Unavailable(message) from exc
            raise errors.Rejected(message, status=500, code=code.name) from exc
    return {"outcome": "provisioned", "configuration": configuration(response)}
