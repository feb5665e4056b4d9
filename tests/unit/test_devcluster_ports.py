"""free_port: never the same port twice in one process while it may still be waiting to bind."""

from __future__ import annotations

import concurrent.futures

from fjord.devcluster.processes import free_port


def test_ports_picked_side_by_side_are_all_different() -> None:
    # Four clusters start in threads and each picks a dozen ports before binding any: the same
    # pattern as the platform's bring-up, many times over.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        ports = list(pool.map(lambda _: free_port(), range(400)))
    assert len(set(ports)) == len(ports)
