"""What local nodes share on this machine: network slots, the host address, kernel settings.

Several local clusters with real nodes run side by side (the platform has four), each with its
own bridge and subnet. A slot number gives each its bridge name and subnet. What they share is
set up by the first node and undone by the last one:

* the host address (``HOST_ADDRESS`` on the port-less bridge ``fjord0``): where Pods reach the
  platform's servers (PostgreSQL, Redis, the Maskinporten emulator), which listen on it as well
  as on loopback;
* the kernel settings kubelet and kube-proxy change (``vm.overcommit_memory``,
  ``kernel.panic`` …): recorded before the first node starts and written back after the last
  one stops, so a node that stops while another runs does not pull settings from under it.

The ledger lives in ``/run`` (a tmpfs): a reboot resets the kernel settings and clears it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fjord.errors import FjordError

LEDGER = Path("/run/fjord-nodes")
HOST_LINK = "fjord0"
HOST_ADDRESS = "10.213.0.1"
MAX_SLOTS = 250

# Every kernel setting a node's parts are known to change (kubelet's kernel tunables, the
# conntrack and forwarding settings of kube-proxy and the CNI plugins). Network settings of a
# bridge vanish with the bridge.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
)


class LedgerError(FjordError):
    pass


@dataclass(frozen=True)
class Slot:
    """A node's share of the machine's network: its bridge and subnet."""

    number: int

    @property
    def bridge(self) -> str:
        return f"fjord{self.number}"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.number}.1"

    @property
    def subnet(self) -> str:
        return f"10.213.{self.number}.0/24"


def read_sysctls() -> dict[str, str]:
    """The current value of every setting in ``SYSCTLS`` that this kernel has."""
    values = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = (Path("/proc/sys") / key).read_text().strip()
    return values


def write_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        path = Path("/proc/sys") / key
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value + "\n")


def netfilter_tables() -> list[str]:
    """The machine's nftables tables (``ip filter``, ``ip6 nat`` …), iptables' among them."""
    if shutil.which("nft") is None:
        return []
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    return sorted(line.removeprefix("table ").strip() for line in listed.stdout.splitlines())


def _remove_new_tables(baseline: list[str]) -> None:
    # kube-proxy's and kubelet's chains live in iptables' tables, which iptables-nft creates on
    # first use and cannot delete; a table that did not exist before the first node goes whole.
    for table in netfilter_tables():
        if table not in baseline and table.split()[0] in ("ip", "ip6"):
            subprocess.run(["nft", "delete", "table", *table.split()], check=False)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name).returncode == 0


def _ensure_host_address() -> None:
    if not link_exists(HOST_LINK):
        created = _ip("link", "add", HOST_LINK, "type", "bridge")  # no dummy module here
        if created.returncode != 0:
            raise LedgerError(f"creating the link {HOST_LINK} failed: {created.stderr.strip()}")
    _ip("addr", "replace", f"{HOST_ADDRESS}/32", "dev", HOST_LINK)
    _ip("link", "set", HOST_LINK, "up")


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    try:
        (LEDGER / "slots").mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        raise LedgerError(
            f"cannot write {LEDGER}: real nodes need root (they create bridges, mounts and "
            "cgroups)",
            "run as root, or leave out --real-node for a cluster of kwok nodes only",
        ) from exc
    with open(LEDGER / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield LEDGER


def _holders(ledger: Path) -> dict[int, str]:
    holders = {}
    for path in (ledger / "slots").iterdir():
        with contextlib.suppress(ValueError, OSError):
            holders[int(path.name)] = path.read_text()
    return holders


def claim(directory: Path) -> Slot:
    """A slot for the node kept in ``directory`` (the same one again if it holds one already)."""
    with _locked() as ledger:
        holders = _holders(ledger)
        for number, holder in holders.items():
            if holder == str(directory):
                _ensure_host_address()
                return Slot(number)
        # A holder whose directory is gone was removed without `down`: its slot is free again.
        for number, holder in list(holders.items()):
            if not Path(holder).exists():
                (ledger / "slots" / str(number)).unlink(missing_ok=True)
                del holders[number]
        if not holders:
            (ledger / "sysctls.json").write_text(json.dumps(read_sysctls()))
            (ledger / "tables.json").write_text(json.dumps(netfilter_tables()))
        free = next((n for n in range(1, MAX_SLOTS + 1) if n not in holders), None)
        if free is None:
            raise LedgerError(f"all {MAX_SLOTS} local node slots are taken (see {LEDGER}/slots)")
        (ledger / "slots" / str(free)).write_text(str(directory))
        _ensure_host_address()
        return Slot(free)


def release(directory: Path, last_out: Callable[[], object] | None = None) -> bool:
    """Give back the slot of ``directory``; the last one out restores what the first set up.

    ``last_out`` runs first when this was the last holder (e.g. kube-proxy's own cleanup).
    Returns True when this was the last node on the machine.
    """
    with _locked() as ledger:
        for number, holder in _holders(ledger).items():
            if holder == str(directory):
                (ledger / "slots" / str(number)).unlink(missing_ok=True)
        if _holders(ledger):
            return False
        if last_out is not None:
            last_out()
        tables = ledger / "tables.json"
        if tables.exists():
            _remove_new_tables(json.loads(tables.read_text()))
            tables.unlink()
        baseline = ledger / "sysctls.json"
        if baseline.exists():
            write_sysctls(json.loads(baseline.read_text()))
            baseline.unlink()
        if link_exists(HOST_LINK):
            _ip("link", "del", HOST_LINK)
        return True


def held_slot(directory: Path) -> Slot | None:
    """The slot ``directory`` holds, without claiming one."""
    slots = LEDGER / "slots"
    if not slots.is_dir():
        return None
    for path in slots.iterdir():
        with contextlib.suppress(ValueError, OSError):
            if path.read_text() == str(directory):
                return Slot(int(path.name))
    return None
