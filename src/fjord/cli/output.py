"""How every ``fjord`` command writes: tables and progress for people, JSON for programs.

Progress and errors go to stderr so stdout stays parseable. Machine-readable output is written
with plain ``print`` because Rich wraps long lines at the terminal width (80 when piped).

Nearly everything printed carries user text (app and key names, values, a chart's ``fail``
message, a server's error), so neither console ever parses Rich markup or emoji codes: a ``[/]``
in a value would crash Rich and a ``[bold]`` would vanish. Colour is added with :func:`styled`
parts instead, which are never parsed. Every console in ``fjord.cli`` is one of these two.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

err = Console(stderr=True, markup=False, emoji=False, highlight=False)
out = Console(markup=False, emoji=False, highlight=False)


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOption = typer.Option(Output.table, "--output", "-o", help="table (for people) or json.")


def emit_json(data: Any) -> None:
    """``data`` as JSON; the API client's models are written as the server sent them."""
    print(json.dumps(data, indent=2, sort_keys=True, default=_jsonable))


def _jsonable(value: Any) -> Any:
    # Imported here: `fjord --help` and commands without JSON output skip pydantic.
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def when(moment: dt.datetime) -> str:
    """A time as the API writes it in JSON (``2026-01-02T03:04:05.678901Z``)."""
    return moment.isoformat().replace("+00:00", "Z")


def emit_line(text: str) -> None:
    """A line a shell or script will consume (e.g. ``export KUBECONFIG=…``), never wrapped."""
    print(text)


def styled(text: object, style: str) -> Text:
    """``text`` (taken literally) in a Rich ``style``, e.g. ``styled(state, "green")``."""
    return Text(str(text), style=style)


def line(*parts: str | Text) -> Text:
    """One printable line from literal strings and :func:`styled` parts."""
    return Text.assemble(*parts)


def fail(message: object, code: int = 1) -> typer.Exit:
    """Print an error and return the Exit to raise: ``raise fail(exc) from exc``."""
    err.print(line(styled("error:", "red"), " ", str(message)), soft_wrap=True)
    return typer.Exit(code=code)
