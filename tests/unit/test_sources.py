"""Pure parts of Git sources: URLs, signatures, ref → version, the webhook's decision, and the
``{version}`` placeholder in ``image:``."""

from __future__ import annotations

import pytest

from fjord.control.builds import image_version
from fjord.control.models import App
from fjord.control.webhooks import decide
from fjord.sources import Resolved, SourceError
from fjord.sources.gitea import commit_url, repository_of, sign, verify_signature
from fjord.sources.mirror import check_url, display_url
from fjord.spec import SpecError, parse_app_spec

SPEC = b"""\
org: ttd
app: skjema
image: ghcr.io/ttd/skjema:{version}
environments:
  tt02:
    image: ghcr.io/ttd/skjema-test:{version}
"""


def test_repository_urls_are_web_urls_without_credentials() -> None:
    assert check_url("https://gitea.example/ttd/skjema.git")
    for bad in ("file:///etc", "/srv/git/skjema", "ssh://git@host/ttd/x.git", "ext::sh -c id"):
        with pytest.raises(SourceError, match="not an http"):
            check_url(bad)
    with pytest.raises(SourceError, match="carries credentials"):
        check_url("https://user:secret@gitea.example/ttd/skjema.git")
    assert display_url("https://u:p@gitea.example:3000/ttd/a.git") == (
        "https://gitea.example:3000/ttd/a.git"
    )


def test_gitea_repository_and_commit_links() -> None:
    base = "http://127.0.0.1:3000"
    assert repository_of(f"{base}/ttd/skjema.git", base) == "ttd/skjema"
    assert repository_of("http://127.0.0.1:3001/ttd/skjema.git", base) is None
    assert repository_of(f"{base}/ttd/skjema/extra.git", base) is None
    assert commit_url(f"{base}/ttd/skjema.git", "abc") == f"{base}/ttd/skjema/commit/abc"


def test_signature_is_the_hex_hmac_of_the_raw_body() -> None:
    body = b'{"ref": "refs/tags/v1.0.0"}'
    good = sign("s3cret", body)
    assert verify_signature("s3cret", body, good)
    assert verify_signature("s3cret", body, good.upper())
    assert not verify_signature("other", body, good)
    assert not verify_signature("s3cret", body + b" ", good)
    assert not verify_signature("s3cret", body, None)


def _resolved(kind: str, ref: str, tags: tuple[str, ...] = ()) -> Resolved:
    return Resolved("http://g/ttd/skjema.git", ref, kind, "a" * 40, tags)


def test_image_version_comes_from_the_tag() -> None:
    assert image_version(_resolved("tag", "v1.4.0")) == "1.4.0"
    assert image_version(_resolved("tag", "release-7")) == "release-7"
    assert image_version(_resolved("branch", "main", ("v1.2.0", "v1.10.0"))) == "1.10.0"
    assert image_version(_resolved("commit", "a" * 40)) is None


def test_version_placeholder_is_filled_or_explained() -> None:
    spec = parse_app_spec(SPEC, version="1.4.0")
    assert spec.image == "ghcr.io/ttd/skjema:1.4.0"
    assert spec.environments["tt02"]["image"] == "ghcr.io/ttd/skjema-test:1.4.0"
    assert parse_app_spec(SPEC, image="ghcr.io/ttd/skjema@sha256:" + "b" * 64).image
    with pytest.raises(SpecError) as caught:
        parse_app_spec(SPEC, "repo at main:fjord.yaml")
    text = str(caught.value)
    assert "repo at main:fjord.yaml:3: image:" in text
    assert "--image" in text


def _app(**kwargs: object) -> App:
    values: dict[str, object] = {"name": "skjema", "source": "http://g/ttd/skjema.git"}
    values.update({"tag_pattern": "v*", "deploy_branch": None, "deploy_environment": None})
    values.update(kwargs)
    return App(**values)


def test_webhook_decision() -> None:
    sha = "c" * 40
    tag = decide(_app(), "ttd/skjema", "push", {"ref": "refs/tags/v1.0.0", "after": sha})
    assert (tag.kind, tag.ref, tag.commit) == ("release", "v1.0.0", sha)
    assert decide(_app(), "ttd/skjema", "push", {"ref": "refs/tags/x1", "after": sha}).kind == (
        "none"
    )
    assert decide(_app(), "ttd/skjema", "push", {"ref": "refs/heads/main", "after": sha}).kind == (
        "none"
    )
    rule = _app(deploy_branch="main", deploy_environment="tt02")
    push = decide(rule, "ttd/skjema", "push", {"ref": "refs/heads/main", "after": sha})
    assert (push.kind, push.ref, push.commit, push.environment) == ("deploy", "main", sha, "tt02")
    deleted = decide(rule, "ttd/skjema", "push", {"ref": "refs/heads/main", "after": "0" * 40})
    assert deleted.kind == "none"
    assert decide(rule, "ttd/skjema", "create", {"ref": "v1.0.0", "after": sha}).kind == "none"
