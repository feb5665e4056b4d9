"""``fjord operator``: defined beside the operators, in :mod:`fjord.operators.common.command`."""

from __future__ import annotations

from fjord.operators.common.command import operator_app

__all__ = ["operator_app"]
