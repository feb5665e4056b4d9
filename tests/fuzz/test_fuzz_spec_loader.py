"""The spec loader on YAML made of the constructs attacks use: only ``SpecError`` comes out.

Texts are built from YAML's structural tokens (anchors, aliases, merge keys, flow and block
nesting, tags including Python's unsafe ones) mixed with plausible keys, so most examples get
past the scanner and into composition, alias expansion and validation.
"""

from __future__ import annotations

from collections import Counter

from fuzz_support import PHASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fjord.spec import SpecError, parse_app_spec, parse_platform
from fjord.spec.errors import Problem

TOKENS = [
    "&a ",
    "&b ",
    "*a",
    "*b",
    "<<: ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "- ",
    ": ",
    "? ",
    "\n",
    "\n  ",
    "\n    ",
    "org",
    "app",
    "image",
    "ttd",
    "x:1",
    "chart",
    "values",
    "environments",
    "tt02",
    "!!python/object/apply:os.system ",
    "!!binary ",
    "!!set ",
    "!!str ",
    "!!map ",
    "'q'",
    '"d"',
    "|\n  block\n",
    ">-\n  folded\n",
    "#c\n",
    "---\n",
    "...\n",
    "1e9",
    "-0",
    ".nan",
    "~",
    "\t",
]
yaml_texts = st.lists(st.sampled_from(TOKENS) | st.text(max_size=5), max_size=60).map("".join)
SETTINGS = settings(
    max_examples=200, phases=PHASES, deadline=None, suppress_health_check=list(HealthCheck)
)


@SETTINGS
@given(text=yaml_texts)
def test_app_spec_loader_raises_only_spec_error(text: str, fuzz_cases: Counter[str]) -> None:
    fuzz_cases["spec loader: fjord.yaml"] += 1
    problems: tuple[Problem, ...] = ()
    try:
        parse_app_spec("org: ttd\napp: a\nimage: x:1\n" + text, "fjord.yaml")
    except SpecError as exc:
        problems = exc.problems
    assert all(p.file == "fjord.yaml" for p in problems)


@SETTINGS
@given(text=yaml_texts)
def test_platform_loader_raises_only_spec_error(text: str, fuzz_cases: Counter[str]) -> None:
    fuzz_cases["spec loader: platform.yaml"] += 1
    problems: tuple[Problem, ...] = ()
    try:
        parse_platform(text, "platform.yaml")
    except SpecError as exc:
        problems = exc.problems
    assert all(p.file == "platform.yaml" for p in problems)
