"""What local nodes could leave behind on the machine, as seen from the host: network links,
mounts, iptables rules, kernel settings and processes. Read here independently of fjord's own
lists, so a test compares the machine before and after without trusting fjord's bookkeeping."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Kernel settings a node's parts are known to touch, read here independently of fjord's list.
WATCHED_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/netfilter/nf_conntrack_max",
)


@dataclass(frozen=True)
class Machine:
    """What a node could leave behind, as seen from the host."""

    links: frozenset[str]
    mounts: frozenset[str]
    iptables: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]
    node_processes: frozenset[str]


def _sysctl(key: str) -> str:
    try:
        return (Path("/proc/sys") / key).read_text().strip()
    except OSError:
        return "-"


def _node_processes(marker: str) -> frozenset[str]:
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cgroups = (proc / "cgroup").read_text()
        except OSError:
            continue
        if marker in cmdline or f"fjord-{Path(marker).name}" in cgroups:
            found.add(f"{proc.name}: {cmdline[:120]}")
    return frozenset(found)


def snapshot(marker: str) -> Machine:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
    return Machine(
        links=frozenset(
            line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines()
        ),
        mounts=frozenset(
            line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
        ),
        # Counters change with traffic; the rules themselves must be the same.
        iptables=tuple(
            re.sub(r"\[\d+:\d+\]", "", line)
            for line in rules.stdout.splitlines()
            if not line.startswith("#")
        ),
        sysctls=tuple((key, _sysctl(key)) for key in WATCHED_SYSCTLS),
        node_processes=_node_processes(marker),
    )
