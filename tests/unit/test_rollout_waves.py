"""The pure rollout planning (``control/waves.py``): wave assignment by name, label and share,
and every branch of a wave step's decision (start, gate, budget, timeout, soak)."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from fjord.control import states, waves
from fjord.spec.platform import (
    Cluster,
    Environment,
    Org,
    PlatformConfig,
    Rollout,
    Wave,
)

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def infos(*names: str, labels: dict[str, dict[str, str]] | None = None) -> list[waves.ClusterInfo]:
    given = labels or {}
    return [waves.ClusterInfo(f"o.e.{n}", n, given.get(n, {})) for n in names]


def ids(planned: list[waves.PlannedWave]) -> list[list[str]]:
    return [[c.rsplit(".", 1)[1] for c in w.clusters] for w in planned]


# ---- assignment ------------------------------------------------------------------------------


def test_waves_by_name_keep_the_named_clusters_and_the_rest_go_last() -> None:
    rollout = Rollout(waves=[Wave(clusters=["c1"]), Wave(clusters=["c2", "c3"])], soak_seconds=5)
    planned = waves.assign(rollout, infos("c4", "c3", "c2", "c1"))
    assert ids(planned) == [["c1"], ["c2", "c3"], ["c4"]]
    assert [w.soak_seconds for w in planned] == [5, 5, 5]


def test_waves_by_label_and_per_wave_soak() -> None:
    rollout = Rollout(
        waves=[Wave(match_labels={"ring": "canary"}, soak_seconds=60), Wave(percent=100)],
        soak_seconds=10,
    )
    planned = waves.assign(
        rollout, infos("a", "b", "c", labels={"b": {"ring": "canary", "zone": "x"}})
    )
    assert ids(planned) == [["b"], ["a", "c"]]
    assert [w.soak_seconds for w in planned] == [60, 10]


def test_percent_rounds_up_of_all_clusters_and_takes_at_least_one() -> None:
    rollout = Rollout(waves=[Wave(percent=10), Wave(percent=50)])
    planned = waves.assign(rollout, infos(*(f"c{i:02}" for i in range(20))))
    assert [len(w.clusters) for w in planned] == [2, 10, 8]
    single = waves.assign(rollout, infos("only"))
    assert ids(single) == [["only"]]


def test_a_wave_selecting_nothing_is_left_out() -> None:
    rollout = Rollout(waves=[Wave(match_labels={"ring": "none"}), Wave(clusters=["a"])])
    assert ids(waves.assign(rollout, infos("a", "b"))) == [["a"], ["b"]]


def test_a_rollback_moves_every_cluster_at_once_without_soak() -> None:
    planned = waves.all_at_once(infos("b", "a"))
    assert ids(planned) == [["a", "b"]]
    assert planned[0].soak_seconds == 0
    assert waves.all_at_once([]) == []


def test_a_wave_names_exactly_one_selector() -> None:
    with pytest.raises(ValidationError, match="exactly one of clusters, matchLabels or percent"):
        Wave(clusters=["a"], percent=50)
    with pytest.raises(ValidationError, match="exactly one"):
        Wave()


def test_the_platform_config_refuses_a_wave_naming_an_unknown_cluster() -> None:
    with pytest.raises(ValidationError) as refused:
        PlatformConfig(
            domain="example.org",
            environments=[
                Environment(name="prod", rollout=Rollout(waves=[Wave(clusters=["c9"])])),
            ],
            orgs={"ttd": Org(clusters={"prod": [Cluster(name="c1")]})},
        )
    assert "environments[0].rollout.waves[0].clusters: no cluster named c9 in prod" in str(
        refused.value
    )


def test_the_platform_config_reads_rollouts_from_yaml_keys() -> None:
    config = PlatformConfig.model_validate(
        {
            "domain": "example.org",
            "environments": [
                {
                    "name": "prod",
                    "rollout": {
                        "waves": [{"matchLabels": {"ring": "0"}}, {"percent": 50}],
                        "soakSeconds": 30,
                        "failureBudget": 1,
                        "rollbackOnFailure": True,
                    },
                }
            ],
            "orgs": {"ttd": {"clusters": {"prod": [{"name": "c1", "labels": {"ring": "0"}}]}}},
        }
    )
    rollout = config.environment("prod").rollout
    assert rollout is not None
    assert (rollout.soak_seconds, rollout.failure_budget, rollout.rollback_on_failure) == (
        30,
        1,
        True,
    )


# ---- a wave step's decision ------------------------------------------------------------------


def wave(
    *,
    started: dt.datetime | None = T0,
    ready: dt.datetime | None = None,
    soak: int = 30,
    budget: int = 0,
    deadline: float = 600,
) -> waves.WaveState:
    return waves.WaveState(started, ready, soak, deadline, budget)


READY = waves.Verdict(states.READY, "applied")
PENDING = waves.Verdict(states.PENDING, "progressing")
FAILED = waves.Verdict(states.FAILED, "HealthCheckFailed: Deployment/x/y not ready")


def test_an_unstarted_wave_starts() -> None:
    assert waves.decide(wave(started=None), {}, T0, 1.0) == waves.Start()


def test_a_pending_cluster_means_check_again_soon() -> None:
    now = T0 + dt.timedelta(seconds=5)
    decision = waves.decide(wave(), {"a": READY, "b": PENDING}, now, 1.0)
    assert decision == waves.CheckAt(now + dt.timedelta(seconds=1))


def test_every_cluster_ready_records_the_moment_and_wakes_at_the_soak_end() -> None:
    now = T0 + dt.timedelta(seconds=5)
    decision = waves.decide(wave(soak=30), {"a": READY, "b": READY}, now, 1.0)
    assert decision == waves.CheckAt(now + dt.timedelta(seconds=1), ready_at=now)
    # A short soak: woken exactly when it ends, not at the next check.
    short = waves.decide(wave(soak=0), {"a": READY}, now, 1.0)
    assert short == waves.Finish(ready_at=now)
    half = waves.decide(wave(soak=1), {"a": READY}, now, 5.0)
    assert half == waves.CheckAt(now + dt.timedelta(seconds=1), ready_at=now)


def test_soaking_keeps_watching_and_finishes_when_soaked() -> None:
    ready = T0 + dt.timedelta(seconds=5)
    during = waves.decide(
        wave(ready=ready, soak=30), {"a": READY}, ready + dt.timedelta(seconds=10), 1.0
    )
    assert during == waves.CheckAt(ready + dt.timedelta(seconds=11))
    done = waves.decide(
        wave(ready=ready, soak=30), {"a": READY}, ready + dt.timedelta(seconds=30), 1.0
    )
    assert done == waves.Finish()


def test_a_failure_while_soaking_halts() -> None:
    ready = T0 + dt.timedelta(seconds=5)
    decision = waves.decide(wave(ready=ready), {"a": READY, "b": FAILED}, ready, 1.0)
    assert decision == waves.Halt(f"b: {FAILED.message}", ("b",))


def test_a_failure_beyond_the_budget_halts_with_the_clusters_message() -> None:
    decision = waves.decide(wave(budget=0), {"a": FAILED, "b": READY}, T0, 1.0)
    assert decision == waves.Halt(f"a: {FAILED.message}", ("a",))


def test_a_failure_within_the_budget_neither_blocks_nor_counts_twice() -> None:
    verdicts = {"a": FAILED, "b": READY}
    decision = waves.decide(wave(budget=1, soak=0), verdicts, T0, 1.0)
    assert decision == waves.Finish(("a",), ready_at=T0)
    # Already counted (recorded by an earlier run): not new, budget untouched.
    again = waves.decide(wave(budget=0, soak=0, ready=T0), verdicts, T0, 1.0, counted=("a",))
    assert again == waves.Finish()
    two = waves.decide(wave(budget=1), {"a": FAILED, "b": FAILED}, T0, 1.0)
    assert isinstance(two, waves.Halt)
    assert two.failed == ("a", "b")


def test_the_gate_times_out_naming_the_clusters_it_waited_for() -> None:
    late = T0 + dt.timedelta(seconds=600)
    decision = waves.decide(wave(deadline=600), {"a": READY, "b": PENDING}, late, 1.0)
    assert decision == waves.Halt("timed out after 600s waiting for b: progressing")
