"""Restate's node control gRPC API, for the one call the operator makes: ProvisionCluster.

The request is `ProvisionClusterRequest{dry_run: false}` with every optional field unset, so the
node's own configuration decides partitions, replication and log provider; in protobuf that
message encodes to zero bytes, which is why no generated stubs are needed. The response is not
used. ALREADY_EXISTS means a previous attempt (or someone else) provisioned it: success.
"""

from __future__ import annotations

from typing import Literal

import grpc

from services.clients import errors

METHOD = "/restate.node_ctl_svc.NodeCtlSvc/ProvisionCluster"
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


async def provision(address: str, *, deadline: float = 30.0) -> Literal["provisioned", "already-provisioned"]:
    """Provision the cluster through the node at `address` (host:port, plaintext HTTP/2)."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD, request_serializer=lambda _: b"", response_deserializer=lambda raw: raw)
        try:
            await call(None, timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.ALREADY_EXISTS:
                return "already-provisioned"
            message = f"ProvisionCluster at {address}: {code.name}: {exc.details()}"
            if code in TRANSIENT:
                raise errors.Unavailable(message) from exc
            raise errors.Rejected(message, status=500, code=code.name) from exc
    return "provisioned"
