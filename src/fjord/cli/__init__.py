"""The ``fjord`` command."""
