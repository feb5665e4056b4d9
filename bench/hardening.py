"""What the hostile-input guards cost per release: YAML limits and Pod Security checks, on vs off.

Builds the same apps as ``bench/releases.py`` (the built-in platform chart, and ``bench/chart``
through Helm) with ``build_release``, interleaving four variants app by app so a shared
machine's noise hits all alike:

* ``on``: as shipped;
* ``no-limits``: the YAML depth bound and alias-expansion count skipped (spec and chart output);
* ``no-podsecurity``: the Pod Security / escape-hatch checks and the volatile-function scan of
  chart templates skipped;
* ``off``: both skipped.

The switch exists only here: it replaces the guard functions in the modules that call them for
the duration of one build. Prints one JSON document: the on/off ratios, and (less exposed to a
busy machine's noise) the time spent inside the guard functions during the ``on`` builds.

    .venv/bin/python bench/hardening.py [--apps 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import releases as shared  # bench/releases.py (this directory is on sys.path): its apps
from fjord import yamllimits
from fjord.render import checks, helm
from fjord.spec import yamlsource

VARIANTS = ("on", "no-limits", "no-podsecurity", "off")


def _no_depth_check(*_: Any, **__: Any) -> None:
    return None


def _compose_unbounded(loader: Any, *_: Any, **__: Any) -> Any:
    return loader.get_single_node()


@contextlib.contextmanager
def guards(variant: str) -> Iterator[None]:
    """Switch the guards of ``variant`` off for the duration of the block."""
    saved: list[tuple[Any, str, Any]] = []

    def replace(module: Any, name: str, value: Any) -> None:
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    if variant in ("no-limits", "off"):
        replace(yamlsource, "compose_one", _compose_unbounded)
        replace(helm, "check_depth", _no_depth_check)
        replace(helm, "check_expansion", _no_depth_check)
        replace(yamllimits, "check_depth", _no_depth_check)
    if variant in ("no-podsecurity", "off"):
        replace(checks, "policy_failures", lambda *_: [])
        replace(helm._Budget, "scan", lambda *_: None)
    try:
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


class GuardClock:
    """Time spent inside the guard functions themselves during ``on`` builds: a direct
    measure that does not drown in the noise of a shared machine like the on/off difference."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function: Any) -> Any:
        def timed_guard(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed_guard

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        targets = [
            (yamllimits, "check_depth"),
            (yamllimits, "check_expansion"),
            (helm, "check_depth"),
            (helm, "check_expansion"),
            (checks, "policy_failures"),
            (helm._Budget, "scan"),
        ]
        saved = [(module, name, getattr(module, name)) for module, name in targets]
        for module, name, value in saved:
            setattr(module, name, self.wrap(value))
        try:
            yield
        finally:
            for module, name, value in saved:
                setattr(module, name, value)


def timed(app_dir: Path, variant: str, clock: GuardClock | None = None) -> tuple[float, str]:
    with guards(variant), clock.installed() if clock else contextlib.nullcontext():
        started = time.perf_counter()
        release = shared.build(app_dir, shared.bench_platform())
        return time.perf_counter() - started, release.digest


def measure(dirs: list[Path], rounds: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    clock = GuardClock()
    for app_dir in dirs:  # warm-up: charts loaded, schemas compiled, caches filled
        timed(app_dir, "on")
    for round_ in range(rounds):
        for index, app_dir in enumerate(dirs):
            order = VARIANTS[(index + round_) % 4 :] + VARIANTS[: (index + round_) % 4]
            digests = set()
            for variant in order:
                seconds, digest = timed(app_dir, variant, clock if variant == "on" else None)
                samples[variant].append(seconds)
                digests.add(digest)
            assert len(digests) == 1, f"{app_dir.name}: the guards changed the release"
    medians = {v: statistics.median(s) * 1000 for v, s in samples.items()}
    totals = {v: sum(s) for v, s in samples.items()}
    return {
        "builds_per_variant": len(samples["on"]),
        "median_ms": {v: round(m, 3) for v, m in medians.items()},
        "cost_of_guards_pct": {
            "limits": round((totals["on"] / totals["no-limits"] - 1) * 100, 2),
            "podsecurity": round((totals["on"] / totals["no-podsecurity"] - 1) * 100, 2),
            "both": round((totals["on"] / totals["off"] - 1) * 100, 2),
        },
        "ratio_on_to_off": round(totals["on"] / totals["off"], 4),
        "inside_guards_ms_per_build": round(clock.seconds / len(samples["on"]) * 1000, 3),
        "inside_guards_pct_of_build": round(clock.seconds / totals["on"] * 100, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=100, help="apps of each kind")
    parser.add_argument("--rounds", type=int, default=3, help="builds per app and variant")
    args = parser.parse_args()
    result: dict[str, Any] = {"apps": args.apps, "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="fjord-bench-hardening-") as tmp:
        root = Path(tmp)
        for kind, with_chart in (("platform_chart", False), ("helm_chart", True)):
            dirs = shared.write_apps(root / kind, args.apps, with_chart=with_chart)
            result[kind] = measure(dirs, args.rounds)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
