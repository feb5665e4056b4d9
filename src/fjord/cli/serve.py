"""``fjord serve``: the API and web UI on loopback (uvicorn)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated

import typer
import uvicorn

from fjord.api import ApiSettings, create_app
from fjord.api.settings import DEFAULT_MAX_BODY_BYTES
from fjord.cli.output import err
from fjord.control import ControlSettings
from fjord.operators.common import logs


def serve(
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port")] = 8650,
    public_url: Annotated[
        str | None,
        typer.Option(help="URL clusters post events to; default $FJORD_PUBLIC_URL or this server"),
    ] = None,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="FJORD_MAX_BODY_BYTES",
            help="larger request bodies get 413 (every route)",
        ),
    ] = DEFAULT_MAX_BODY_BYTES,
    log_format: Annotated[
        str,
        typer.Option(envvar="FJORD_LOG_FORMAT", help="text, or json: one JSON object a line"),
    ] = "text",
    log_level: Annotated[str, typer.Option(envvar="FJORD_LOG_LEVEL")] = "INFO",
) -> None:
    """Serve the control plane's API (/api, /openapi.json) and web UI (/)."""
    if log_format not in ("text", "json"):
        err.print(f"error: --log-format {log_format!r}: use text or json", markup=False)
        raise typer.Exit(2)
    control = ControlSettings.from_env()
    url = public_url or os.environ.get("FJORD_PUBLIC_URL") or f"http://{host}:{port}"
    control = replace(control, public_url=url.rstrip("/"))
    app = create_app(ApiSettings(control=control, max_body_bytes=max_body_bytes))
    err.print(f"fjord serving on http://{host}:{port} (data: {control.data_dir})")
    if log_format == "json":
        # The operators' structlog set-up (secrets scrubbed); uvicorn's loggers propagate to it.
        logs.configure(log_level)
        uvicorn.run(app, host=host, port=port, log_config=None)
    else:
        uvicorn.run(app, host=host, port=port, log_level=log_level.lower())
