"""``python -m fjord.operators.common.main operator run …``: the operators without the rest of
the ``fjord`` command.

Same arguments and code as ``fjord operator run`` (:mod:`fjord.operators.common.command`), but
the ``fjord`` command imports every sub-command at start-up (HTTP API, control plane, rendering,
emulator), which costs an operator process about 100 MiB of RSS it never uses. The install manifests
(``deploy/operator/deployment.yaml``), the tests and the benchmark start operators this way.
"""

from __future__ import annotations

import typer

from fjord.operators.common.command import operator_app

app = typer.Typer(name="fjord", no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(operator_app, name="operator")


def main() -> None:
    app(prog_name="fjord")


if __name__ == "__main__":
    main()
