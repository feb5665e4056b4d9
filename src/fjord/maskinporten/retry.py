"""Moved to :mod:`fjord.retry`, the one retry policy of fjord's HTTP clients; import it from there.

Only a re-export, kept while code written against the old place (the operators' setup, reshaped
in parallel) still imports it; delete it once nothing does.
"""

from fjord.retry import RetryPolicy

__all__ = ["RetryPolicy"]
