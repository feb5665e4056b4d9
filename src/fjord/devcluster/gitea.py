"""A loopback Gitea (1.27, built from its module) for the demo and the tests: where apps live.

:meth:`LocalGitea.start` writes an ``app.ini`` (SQLite, loopback, no SSH, no registration,
webhooks allowed to loopback), creates the database and an admin user with Gitea's own CLI, then
runs ``gitea web`` on a free port and waits for ``/api/healthz``. Port, admin password, admin
token and process record go into ``gitea.json`` in the state directory, so
:meth:`LocalGitea.load` finds the server from another process.

:func:`seed` makes it look like Altinn's: orgs with private repositories holding the sample apps
(one commit and a tag each) and, per org, a reader user whose token can only read that org's
repositories: the per-org credential the control plane fetches with.

Gitea refuses to run as root unless ``GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT`` is set; the
machines fjord develops on run everything as root, so the variable is always set here.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx2

from fjord.devcluster import binaries, processes
from fjord.devcluster.processes import ComponentFailed, ProcessRecord
from fjord.devcluster.statefile import read_state, remove_state, write_state

STATE_FILE = "gitea.json"
ADMIN_USER = "fjord-admin"
ROOT_ENV = {"GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT": "true"}
# A fixed author and date: the same files pushed again give the same commit.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "fjord demo",
    "GIT_AUTHOR_EMAIL": "demo@fjord.localhost",
    "GIT_COMMITTER_NAME": "fjord demo",
    "GIT_COMMITTER_EMAIL": "demo@fjord.localhost",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


class GiteaError(ComponentFailed):
    """Gitea could not be started, found or set up."""


def _app_ini(state: Path, data_dir: Path, port: int, keys: Mapping[str, str]) -> str:
    return f"""\
APP_NAME = fjord local Gitea
RUN_MODE = prod
WORK_PATH = {state}

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
ROOT_URL = http://127.0.0.1:{port}/
STATIC_ROOT_PATH = {data_dir}
APP_DATA_PATH = {state / "data"}
DISABLE_SSH = true
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = {state / "data" / "gitea.db"}

[repository]
ROOT = {state / "repositories"}
DEFAULT_PRIVATE = private

[security]
INSTALL_LOCK = true
SECRET_KEY = {keys["secret"]}
INTERNAL_TOKEN = {keys["internal"]}
ALLOWED_HOST_LIST = loopback

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false

[oauth2]
ENABLED = true
JWT_SECRET = {keys["jwt"]}
; ID tokens (and so the groups fjord maps to roles) live five minutes: a team change reaches
; fjord at the next refresh, within that.
ACCESS_TOKEN_EXPIRATION_TIME = 300

[session]
PROVIDER = memory

[cron]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
"""


def _healthy(port: int) -> bool:
    try:
        return httpx2.get(f"http://127.0.0.1:{port}/api/healthz", timeout=2.0).status_code == 200
    except httpx2.HTTPError:
        return False


@dataclass
class LocalGitea:
    """A running Gitea on 127.0.0.1; :attr:`token` is the admin's API token (scope ``all``)."""

    state_dir: Path
    port: int
    password: str
    token: str
    record: ProcessRecord
    # fjord's OAuth2 applications (:meth:`register_fjord`): ids, client ids, the UI's secret.
    oidc: dict[str, Any] | None = None

    admin = ADMIN_USER

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clone_url(self, repository: str) -> str:
        return f"{self.url}/{repository}.git"

    @classmethod
    def start(cls, state_dir: Path | str, *, binary_dir: Path | None = None) -> LocalGitea:
        directory = binary_dir or binaries.locate_group("gitea")
        binary, data_dir = directory / "gitea", directory / "gitea-data"
        if not binary.exists():
            raise GiteaError(
                f"{binary} not found",
                hint="PYTHONPATH=src python3 -m fjord.devcluster.binaries build gitea",
            )
        state = Path(state_dir).resolve()
        (state / "data").mkdir(parents=True, exist_ok=True)
        config = state / "app.ini"
        keys = {
            "secret": secrets.token_hex(32),
            "internal": secrets.token_hex(32),
            "jwt": base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        }
        env = {**ROOT_ENV, "HOME": str(state), "GITEA_WORK_DIR": str(state)}
        password = secrets.token_urlsafe(18)

        def argv_for(port: int) -> list[str]:
            config.write_text(_app_ini(state, data_dir, port, keys))
            return [str(binary), "web", "--config", str(config), "--port", str(port)]

        # The schema and the admin exist before the server starts: no race with its first start.
        argv_for(processes.free_port())
        _cli(env, state, "migrate", [str(binary), "migrate", "--config", str(config)])
        _cli(
            env,
            state,
            "admin user create",
            [
                str(binary), "admin", "user", "create", "--config", str(config), "--admin",
                "--username", ADMIN_USER, "--password", password,
                "--email", "admin@fjord.localhost", "--must-change-password=false",
            ],
        )  # fmt: skip
        record, port = processes.start_server(
            "gitea", argv_for, log=state / "gitea.log", ready=_healthy, env=env, timeout=60
        )
        try:
            token = _create_token(f"http://127.0.0.1:{port}", ADMIN_USER, password, ["all"])
        except Exception:
            processes.stop(record)
            raise
        server = cls(state, port, password, token, record)
        server._save()
        return server

    def _save(self) -> None:
        data = {
            "port": self.port,
            "password": self.password,
            "token": self.token,
            "record": self.record.to_json(),
            "oidc": self.oidc,
        }
        write_state(self.state_dir / STATE_FILE, data)

    @classmethod
    def load(cls, state_dir: Path | str) -> LocalGitea | None:
        state = Path(state_dir).resolve()
        data = read_state(state / STATE_FILE)
        if data is None:
            return None
        return cls(
            state,
            int(data["port"]),
            str(data["password"]),
            str(data["token"]),
            ProcessRecord.from_json(data["record"]),
            data.get("oidc"),
        )

    def running(self) -> bool:
        return processes.is_alive(self.record)

    def stop(self) -> None:
        processes.stop(self.record)
        remove_state(self.state_dir / STATE_FILE)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- the API, as the admin ---------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, ok: Sequence[int] = ()) -> Any:
        """Call ``/api/v1{path}`` as the admin; a status outside 2xx (and ``ok``) raises."""
        response = httpx2.request(
            method,
            f"{self.url}/api/v1{path}",
            json=body,
            headers={"Authorization": f"token {self.token}"},
            timeout=30.0,
        )
        if response.status_code >= 300 and response.status_code not in ok:
            raise GiteaError(f"gitea {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def create_org(self, org: str) -> None:
        self.api("POST", "/orgs", {"username": org, "visibility": "private"}, ok=(422,))

    def create_repo(self, repository: str) -> None:
        org, name = repository.split("/")
        self.api(
            "POST", f"/orgs/{org}/repos", {"name": name, "private": True, "auto_init": False},
            ok=(409,),
        )  # fmt: skip

    def _user(self, user: str) -> str:
        """Create ``user`` (or give an existing one a fresh password); its password."""
        password = secrets.token_urlsafe(18)
        self.api(
            "POST",
            "/admin/users",
            {
                "username": user,
                "email": f"{user}@fjord.localhost",
                "password": password,
                "must_change_password": False,
            },
            ok=(422,),
        )
        # An existing user (a second seed) gets a fresh password, so its token can be minted.
        self.api(
            "PATCH",
            f"/admin/users/{user}",
            {"login_name": user, "source_id": 0, "password": password,
             "must_change_password": False},
        )  # fmt: skip
        return password

    def developer(self, user: str, orgs: Sequence[str]) -> str:
        """A person in each org's ``Owners`` team (they push to the apps' repositories and see
        fjord's webhooks and commit statuses there); their password. The demo's service owner."""
        password = self._user(user)
        for org in orgs:
            owners = next(t for t in self.api("GET", f"/orgs/{org}/teams") if t["name"] == "Owners")
            self.api("PUT", f"/teams/{owners['id']}/members/{user}")
        return password

    def reader_token(self, org: str) -> str:
        """A token that can only read ``org``'s repositories (a member of its ``readers`` team).

        The control plane's per-org fetch credential: it can clone, nothing else.
        """
        user = f"{org}-reader"
        password = self._user(user)
        teams = self.api("GET", f"/orgs/{org}/teams")
        team = next((t for t in teams if t["name"] == "readers"), None)
        if team is None:
            team = self.api(
                "POST",
                f"/orgs/{org}/teams",
                {
                    "name": "readers",
                    "includes_all_repositories": True,
                    "units": ["repo.code"],
                    "units_map": {"repo.code": "read"},
                },
            )
        self.api("PUT", f"/teams/{team['id']}/members/{user}")
        return _create_token(self.url, user, password, ["read:repository"])

    # ---- sign-in: users, teams, OAuth2 applications -------------------------------------------

    def create_user(self, username: str, password: str, *, full_name: str = "") -> None:
        self.api(
            "POST",
            "/admin/users",
            {
                "username": username,
                "full_name": full_name,
                "email": f"{username}@fjord.localhost",
                "password": password,
                "must_change_password": False,
            },
            ok=(422,),
        )

    def team_id(self, org: str, team: str) -> int:
        """The id of ``org``'s team ``team``, created (read access to every repo) if missing."""
        found = next((t for t in self.api("GET", f"/orgs/{org}/teams") if t["name"] == team), None)
        if found is None:
            found = self.api(
                "POST",
                f"/orgs/{org}/teams",
                {
                    "name": team,
                    "includes_all_repositories": True,
                    "units": ["repo.code"],
                    "units_map": {"repo.code": "read"},
                },
            )
        return int(found["id"])

    def add_to_team(self, org: str, team: str, user: str) -> None:
        self.api("PUT", f"/teams/{self.team_id(org, team)}/members/{user}")

    def remove_from_team(self, org: str, team: str, user: str) -> None:
        self.api("DELETE", f"/teams/{self.team_id(org, team)}/members/{user}")

    def register_fjord(self) -> dict[str, Any]:
        """fjord's two OAuth2 applications, registered once and kept in the state file: the web
        UI and the CLI. Both are public clients (PKCE, no secret): Gitea matches a public
        client's loopback redirect on any port, so fjord's port need not be known here."""
        if self.oidc is None:
            ui = self._oauth_app("fjord", ["http://127.0.0.1/ui/oidc/callback"])
            cli = self._oauth_app("fjord-cli", ["http://127.0.0.1/callback"])
            self.oidc = {
                "issuer": self.url,
                "client_id": ui["client_id"],
                "cli_client_id": cli["client_id"],
            }
            self._save()
        return self.oidc

    def _oauth_app(self, name: str, redirects: list[str]) -> Any:
        return self.api(
            "POST",
            "/user/applications/oauth2",
            {
                "name": name,
                "redirect_uris": redirects,
                "confidential_client": False,
                "skip_secondary_authorization": True,  # fjord's own: no consent page
            },
        )

    def git(self, work: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
        """Run git in ``work`` with the admin's token as an HTTP header (never in a URL)."""
        header = f"http.extraHeader=Authorization: token {self.token}"
        result = subprocess.run(
            ["git", "-c", header, "-C", str(work), *args],
            env={**os.environ, **GIT_IDENTITY, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise GiteaError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def delete_ref(self, repository: str, ref: str) -> None:
        """Delete a branch or tag (``refs/tags/v1``) by a git push, as a developer would."""
        with tempfile.TemporaryDirectory(prefix="fjord-push-") as tmp:
            self.git(Path(tmp), "init", "-q")
            self.git(Path(tmp), "push", "-q", self.clone_url(repository), f":{ref}")

    def push_directory(
        self,
        repository: str,
        source: Path,
        *,
        tag: str | None = None,
        message: str = "import",
        date: str = "2026-01-01T00:00:00Z",
    ) -> str:
        """Commit ``source``'s files as the next commit of ``main`` and push it (and ``tag``).

        Returns the commit. A fresh clone per push keeps it independent of any earlier state.
        """
        with tempfile.TemporaryDirectory(prefix="fjord-push-") as tmp:
            work = Path(tmp) / "work"
            work.mkdir()
            self.git(work, "init", "-q", "-b", "main")
            remote = self.clone_url(repository)
            self.git(work, "remote", "add", "origin", remote)
            if self.git(work, "ls-remote", "--heads", "origin", "main"):
                self.git(work, "fetch", "-q", "origin", "main")
                self.git(work, "reset", "-q", "--soft", "FETCH_HEAD")
            for entry in work.iterdir():
                if entry.name != ".git":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            shutil.copytree(source, work, dirs_exist_ok=True)
            self.git(work, "add", "-A")
            dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
            self.git(work, "commit", "-q", "--allow-empty", "-m", message, env=dates)
            commit = self.git(work, "rev-parse", "HEAD")
            self.git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
            if tag:
                self.git(work, "tag", tag)
                self.git(work, "push", "-q", "origin", f"refs/tags/{tag}")
        return commit


def _cli(env: Mapping[str, str], state: Path, what: str, argv: list[str]) -> None:
    result = subprocess.run(
        argv,
        env={**os.environ, **env},
        cwd=state,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise GiteaError(f"gitea {what} failed:\n{output}")


def _create_token(url: str, user: str, password: str, scopes: list[str]) -> str:
    response = httpx2.post(
        f"{url}/api/v1/users/{user}/tokens",
        json={"name": f"fjord-{secrets.token_hex(4)}", "scopes": scopes},
        auth=(user, password),
        timeout=30.0,
    )
    if response.status_code != 201:
        raise GiteaError(f"creating a token for {user}: {response.status_code} {response.text}")
    return str(response.json()["sha1"])


@dataclass(frozen=True)
class SeededRepo:
    repository: str  # org/name
    clone_url: str
    commit: str
    tag: str


def seed(
    gitea: LocalGitea, repos: Mapping[str, Path], *, tag: str = "v1.0.0"
) -> tuple[dict[str, SeededRepo], dict[str, str]]:
    """Orgs, private repositories with ``repos``' directories pushed and tagged, reader tokens.

    Returns (repository → what was pushed, org → its reader token).
    """
    orgs = sorted({name.split("/")[0] for name in repos})
    for org in orgs:
        gitea.create_org(org)
    seeded: dict[str, SeededRepo] = {}
    for repository, source in repos.items():
        gitea.create_repo(repository)
        commit = gitea.push_directory(repository, source, tag=tag)
        seeded[repository] = SeededRepo(repository, gitea.clone_url(repository), commit, tag)
    tokens = {org: gitea.reader_token(org) for org in orgs}
    return seeded, tokens
