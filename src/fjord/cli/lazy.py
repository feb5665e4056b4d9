"""A command group that imports a sub-command's module only when that sub-command runs.

``fjord --help`` and ``fjord status`` should not pay for Kubernetes clients, FastAPI, SQLAlchemy
and the dev platform they never use (importing everything took ~2 s and ~220 MiB). The root group
knows each sub-command's name, module and one-line help up front; the module is imported when the
command is resolved to run (or to print its own help), never for the root's command list.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    # Typer vendors Click; its classes are named here for the type checker only.
    from typer._click import Command, Context


@dataclass(frozen=True)
class LazyCommand:
    """Where a sub-command lives: ``module:attribute``, a ``typer.Typer`` or a command function."""

    module: str
    attribute: str
    help: str

    def load(self, name: str) -> Command:
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            group = typer.main.get_group(target)
            group.name = name
            return group
        # A plain function: let Typer build the command from its signature, as for root.command.
        single = typer.Typer()
        single.command(name)(target)
        return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """A Typer group whose sub-commands come from ``lazy_commands`` and load on first use."""

    lazy_commands: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, Command] = {}
        self._listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy_commands]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        own = super().get_command(ctx, cmd_name)
        if own is not None or cmd_name not in self.lazy_commands:
            return own
        lazy = self.lazy_commands[cmd_name]
        if self._listing:
            # The root's help only needs the name and one line: no import for that.
            return TyperCommand(cmd_name, help=lazy.help, short_help=lazy.help)
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = lazy.load(cmd_name)
        return self._loaded[cmd_name]

    def get_help(self, ctx: Context) -> str:
        self._listing = True
        try:
            return super().get_help(ctx)
        finally:
            self._listing = False
