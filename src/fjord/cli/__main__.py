"""``python -m fjord.cli``: the same as the ``fjord`` command."""

from fjord.cli.main import app

app(prog_name="fjord")
