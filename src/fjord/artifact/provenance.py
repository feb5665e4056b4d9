"""SLSA provenance v1 for a release: what was built, from what, by which builder.

The predicate (``https://slsa.dev/provenance/v1``) goes into an in-toto statement about the
release's manifest digest, signed as a Sigstore bundle (:mod:`.bundle`), so
``cosign verify-attestation --type slsaprovenance1 --key cosign.pub`` verifies it:

* ``buildDefinition.buildType``: fjord's release build (render → pack), versioned;
* ``externalParameters``: what the caller asked for — the app, its source repository and
  revision, the target environments;
* ``internalParameters``: what the control plane added — the dynamic-config version;
* ``resolvedDependencies``: the inputs with their digests — the source commit (when the source
  is a git checkout, ``gitCommit``), the app spec, the platform config and the dynamic config
  (each SHA-256 of its canonical JSON, so any change to an input changes its digest);
* ``runDetails.builder``: fjord's builder id and version.

No timestamps: the same release gives the same predicate and so the same signed bundle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://fjord.dev/release-build/v1"
BUILDER_ID = "https://fjord.dev/builder"

_GIT_REVISION = re.compile(r"^(?P<ref>.+)@sha1:(?P<commit>[0-9a-f]{40})$")


@dataclass(frozen=True)
class Input:
    """One input of a build and its digest (``sha256:<hex>``)."""

    name: str
    digest: str


@dataclass(frozen=True)
class BuildFacts:
    """Everything the provenance states about one release."""

    org: str
    app: str
    source: str
    revision: str
    environments: tuple[str, ...]
    dynamic_version: int
    builder: str  # "fjord/<version>"
    inputs: tuple[Input, ...] = ()


@dataclass(frozen=True)
class ProvenanceSummary:
    """The parts of a provenance predicate ``fjord release inspect`` prints."""

    builder_id: str
    builder_version: str
    build_type: str
    app: str
    source: str
    revision: str
    commit: str | None
    environments: tuple[str, ...]
    dynamic_version: int | None
    inputs: tuple[Input, ...]


def git_commit(revision: str) -> str | None:
    """The commit of a ``<ref>@sha1:<commit>`` revision (Flux's suggested form), else None."""
    match = _GIT_REVISION.match(revision)
    return match.group("commit") if match else None


def _builder_version(builder: str) -> dict[str, str]:
    name, _, version = builder.partition("/")
    return {name or "fjord": version or "unknown"}


def predicate(facts: BuildFacts) -> dict[str, Any]:
    """The SLSA provenance v1 predicate for ``facts``."""
    dependencies: list[dict[str, Any]] = []
    commit = git_commit(facts.revision)
    if commit is not None:
        dependencies.append({"uri": f"git+{facts.source}", "digest": {"gitCommit": commit}})
    for item in facts.inputs:
        algorithm, _, value = item.digest.partition(":")
        dependencies.append({"name": item.name, "digest": {algorithm: value}})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "app": f"{facts.org}/{facts.app}",
                "source": {"repository": facts.source, "revision": facts.revision},
                "environments": list(facts.environments),
            },
            "internalParameters": {"dynamicConfigVersion": facts.dynamic_version},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": _builder_version(facts.builder)},
        },
    }


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _inputs(dependencies: Sequence[Any]) -> tuple[Input, ...]:
    found = []
    for dependency in dependencies:
        entry = _mapping(dependency)
        digest = _mapping(entry.get("digest"))
        name = str(entry.get("name") or entry.get("uri") or "?")
        for algorithm, value in sorted(digest.items()):
            found.append(Input(name, f"{algorithm}:{value}"))
    return tuple(found)


def summarize(document: Mapping[str, Any]) -> ProvenanceSummary:
    """Read back a provenance predicate (any producer's; missing parts become empty)."""
    definition = _mapping(document.get("buildDefinition"))
    external = _mapping(definition.get("externalParameters"))
    internal = _mapping(definition.get("internalParameters"))
    source = _mapping(external.get("source"))
    builder = _mapping(_mapping(document.get("runDetails")).get("builder"))
    version = _mapping(builder.get("version"))
    dependencies = definition.get("resolvedDependencies")
    inputs = _inputs(dependencies if isinstance(dependencies, list) else [])
    revision = str(source.get("revision", ""))
    config_version = internal.get("dynamicConfigVersion")
    return ProvenanceSummary(
        builder_id=str(builder.get("id", "")),
        builder_version=", ".join(f"{k} {v}" for k, v in sorted(version.items())),
        build_type=str(definition.get("buildType", "")),
        app=str(external.get("app", "")),
        source=str(source.get("repository", "")),
        revision=revision,
        commit=git_commit(revision),
        environments=tuple(str(e) for e in external.get("environments") or ()),
        dynamic_version=config_version if isinstance(config_version, int) else None,
        inputs=inputs,
    )
