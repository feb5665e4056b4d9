"""The apiserver relay copies bytes both ways and closes the client when the target closes."""

from __future__ import annotations

import asyncio
import contextlib

from fjord.devcluster import apirelay, processes

PAYLOAD = b"tls bytes " * 20_000  # more than one read of the relay


async def _upper_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.readexactly(len(PAYLOAD))
    writer.write(data.upper())
    await writer.drain()
    writer.close()


async def test_bytes_go_through_both_ways_and_a_closed_target_closes_the_client() -> None:
    target = await asyncio.start_server(_upper_echo, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    relay_port = processes.free_port()
    relay = asyncio.create_task(apirelay.serve("127.0.0.1", relay_port, target_port))
    try:
        for _ in range(200):
            if apirelay.listening("127.0.0.1", relay_port):
                break
            await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay_port)
        writer.write(PAYLOAD)
        await writer.drain()
        # read() returns at EOF only: the relay closed the client when the target closed.
        assert await asyncio.wait_for(reader.read(), timeout=30) == PAYLOAD.upper()
        writer.close()
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        target.close()
        await target.wait_closed()


def test_the_kubernetes_service_endpoint_names_the_relay() -> None:
    slice_ = apirelay.endpoint_slice("10.213.4.1", 31000)
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert slice_["endpoints"] == [{"addresses": ["10.213.4.1"], "conditions": {"ready": True}}]
    assert slice_["ports"] == [{"name": "https", "port": 31000, "protocol": "TCP"}]
