"""Bare mirrors against the real Gitea: refs resolve to commits, fetches are incremental and
safe side by side, bad refs and credentials and unsupported trees are refused with the
repository and ref named, and the same commit builds the same digest from any mirror path."""

from __future__ import annotations

import concurrent.futures
import shutil
from pathlib import Path

import pytest

from fjord.control.builds import render_commit
from fjord.devcluster.processes import free_port
from fjord.sources import (
    CredentialError,
    UnknownRefError,
    UnreachableError,
    UnsupportedSourceError,
    mirror_for,
)
from fjord.sources.mirror import Mirror
from fjord.spec import DynamicConfig, default_platform
from fjord.spec.platform import IngressRouting
from gitea_support import EXAMPLES, SessionGitea

PLATFORM = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})


def _refs(mirror: Mirror) -> set[str]:
    result = mirror._git("for-each-ref", "--format=%(refname)")
    return set(result.stdout.decode().split())


def test_resolve_tag_branch_and_commit(gitea: SessionGitea, tmp_path: Path) -> None:
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    mirror = mirror_for(tmp_path / "mirrors", repo.clone_url, gitea.tokens["ttd"])
    tag = mirror.resolve("v1.0.0")
    assert (tag.kind, tag.commit, tag.tags) == ("tag", repo.commit, ("v1.0.0",))
    branch = mirror.resolve("main")
    assert (branch.kind, branch.commit) == ("branch", repo.commit)
    short = mirror.resolve(repo.commit[:10])
    assert (short.kind, short.commit) == ("commit", repo.commit)
    files = mirror.read(repo.commit, ["fjord.yaml"])
    assert files["fjord.yaml"] == (EXAMPLES / "platform-app" / "fjord.yaml").read_bytes()
    # The token reached git only through the environment: nothing on disk names it.
    for path in (tmp_path / "mirrors").rglob("*"):
        if path.is_file():
            assert gitea.tokens["ttd"].encode() not in path.read_bytes(), path


def test_fetch_is_incremental_and_prunes(gitea: SessionGitea, tmp_path: Path) -> None:
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    mirror = mirror_for(tmp_path / "mirrors", repo.clone_url, gitea.tokens["ttd"])
    first = mirror.resolve("main")
    source = tmp_path / "next"
    shutil.copytree(EXAMPLES / "platform-app", source)
    (source / "README.md").write_text("second commit\n")
    second = gitea.push(repo, source, message="docs", tag="v1.1.0")
    assert mirror.resolve("main").commit == second != first.commit
    assert mirror.resolve("v1.1.0").commit == second
    # A full sha the mirror has resolves without asking the server (it may be down).
    offline = Mirror(mirror.path, f"http://127.0.0.1:{free_port()}/ttd/x.git", None, attempts=1)
    assert offline.resolve(first.commit).commit == first.commit
    gitea.server.delete_ref(repo.repository, "refs/tags/v1.1.0")
    mirror.fetch()
    assert "refs/tags/v1.1.0" not in _refs(mirror)


def test_concurrent_resolves_share_one_mirror(gitea: SessionGitea, tmp_path: Path) -> None:
    repo = gitea.push_app("digdir", "app-with-chart", name="varsel")
    root = tmp_path / "mirrors"

    def resolve(ref: str) -> str:
        return mirror_for(root, repo.clone_url, gitea.tokens["digdir"]).resolve(ref).commit

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        commits = list(pool.map(resolve, ["v1.0.0", "main"] * 3))
    assert set(commits) == {repo.commit}
    mirror = mirror_for(root, repo.clone_url, None)
    assert mirror._git("fsck", "--no-progress").returncode == 0


def test_unknown_ref_names_repository_and_ref(gitea: SessionGitea, tmp_path: Path) -> None:
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    mirror = mirror_for(tmp_path, repo.clone_url, gitea.tokens["ttd"])
    for ref in ("v9.9.9", "no-such-branch", "0" * 40):
        with pytest.raises(UnknownRefError) as caught:
            mirror.resolve(ref)
        assert repo.repository in caught.value.message
        assert repr(ref) in caught.value.message
    with pytest.raises(UnknownRefError, match="not a tag, branch or commit name"):
        mirror.resolve("--upload-pack=touch /tmp/x")


def test_credentials_are_checked(gitea: SessionGitea, tmp_path: Path) -> None:
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    with pytest.raises(CredentialError, match=repo.repository):
        mirror_for(tmp_path / "a", repo.clone_url, "not-a-token").resolve("v1.0.0")
    # digdir's token cannot see ttd's private repository: Gitea says "not found".
    with pytest.raises(UnreachableError, match="cannot read it"):
        mirror_for(tmp_path / "b", repo.clone_url, gitea.tokens["digdir"]).resolve("v1.0.0")
    with pytest.raises(CredentialError):
        mirror_for(tmp_path / "c", repo.clone_url, None).resolve("v1.0.0")


def test_unreachable_server_is_retried_then_reported(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/ttd/skjema.git"
    mirror = Mirror(tmp_path / "m.git", url, None, attempts=2, backoff=0.01)
    with pytest.raises(UnreachableError, match=r"127\.0\.0\.1") as caught:
        mirror.resolve("v1.0.0")
    assert "ttd/skjema" in caught.value.message


def test_submodules_and_lfs_pointers_are_refused(gitea: SessionGitea, tmp_path: Path) -> None:
    lfs = tmp_path / "lfs"
    shutil.copytree(EXAMPLES / "app-with-chart", lfs)
    (lfs / "chart" / "values.yaml").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 12\n"
    )
    repo = gitea.push_app("digdir", lfs, name="varsel")
    mirror = mirror_for(tmp_path / "m", repo.clone_url, gitea.tokens["digdir"])
    resolved = mirror.resolve("v1.0.0")
    with pytest.raises(UnsupportedSourceError, match="LFS") as caught:
        mirror.read(resolved.commit, ["chart"], "v1.0.0")
    assert "chart/values.yaml" in caught.value.message
    assert repo.repository in caught.value.message
    assert "v1.0.0" in caught.value.message

    sub = tmp_path / "sub"
    shutil.copytree(EXAMPLES / "platform-app", sub)
    (sub / ".gitmodules").write_text('[submodule "lib"]\n\tpath = lib\n\turl = ../lib.git\n')
    repo = gitea.push_app("ttd", sub, name="skjema")
    mirror = mirror_for(tmp_path / "m", repo.clone_url, gitea.tokens["ttd"])
    with pytest.raises(UnsupportedSourceError, match="submodules"):
        mirror.read(mirror.resolve("v1.0.0").commit, ["fjord.yaml"], "v1.0.0")


def test_same_commit_same_digest_from_any_mirror(gitea: SessionGitea, tmp_path: Path) -> None:
    repo = gitea.push_app("digdir", "app-with-chart", name="varsel")
    digests = set()
    for where in ("one", "two/deeper"):
        mirror = mirror_for(tmp_path / where, repo.clone_url, gitea.tokens["digdir"])
        for ref in ("v1.0.0", repo.commit):
            build = render_commit(
                mirror,
                mirror.resolve(ref),
                org="digdir",
                app="varsel",
                platform=PLATFORM,
                dynamic=DynamicConfig(),
            )
            assert build.built.revision == f"sha1:{repo.commit}"
            digests.add(build.built.digest)
    assert len(digests) == 1
