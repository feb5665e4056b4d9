"""The Kubernetes API for Pods on a real node: ``https://kubernetes.default.svc`` from inside.

kube-apiserver listens on loopback only (the machine is shared; nothing listens on outside
interfaces), which a Pod cannot reach: its ``127.0.0.1`` is its own network namespace. This relay
listens on the node's bridge address (the host side of the Pods' network, on this machine only)
and copies bytes both ways to the apiserver's loopback port; TLS runs end to end through it. The
``kubernetes`` Service's EndpointSlice names the relay (the apiserver's own endpoint reconciler is
off, it would name ``127.0.0.1``), so kube-proxy sends ``10.96.0.1:443`` there and in-cluster
clients (operators with their ServiceAccount token) work as in any cluster.

``python -m fjord.devcluster.apirelay LISTEN_HOST LISTEN_PORT TARGET_PORT`` (target on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from typing import Any

SERVICE_IP = "10.96.0.1"  # the first address of the clusters' --service-cluster-ip-range
_CHUNK = 64 * 1024


def argv(host: str, port: int, target_port: int) -> list[str]:
    return [sys.executable, "-m", __name__, host, str(port), str(target_port)]


def listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def endpoint_slice(address: str, port: int) -> dict[str, Any]:
    """The ``kubernetes`` Service's endpoints: the relay."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "fjord-devcluster",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def serve(host: str, port: int, target_port: int) -> None:
    """Relay connections to ``host:port`` to ``127.0.0.1:target_port`` until cancelled."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", target_port
            )
        except OSError:
            writer.close()
            return
        # Either side closing ends both directions; errors of a closed peer are expected.
        await asyncio.gather(
            _copy(reader, upstream_writer),
            _copy(upstream_reader, writer),
            return_exceptions=True,
        )

    server = await asyncio.start_server(connected, host, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    host, port, target_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    asyncio.run(serve(host, port, target_port))


if __name__ == "__main__":
    main()
