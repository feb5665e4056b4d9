"""Layering: no product package imports the CLI or the local dev platform.

``fjord.cli`` (the command line) and ``fjord.devcluster`` (local clusters, registries and
databases for development and tests) sit on top of everything else. A product module that imports
them drags dev-only code (and its assumptions, such as a Go build cache) into a ``pip install``ed
fjord, the operator image or the control plane. Read from the source with ``ast``, so imports
inside functions count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import fjord

SRC = Path(fjord.__file__).resolve().parent
TOP = frozenset({"cli", "devcluster"})


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = SRC) -> Iterator[tuple[int, str]]:
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from fjord import cli`
                yield node.lineno, f"{target}.{alias.name}"


def _product_modules(skip: frozenset[str] = TOP) -> Iterator[Path]:
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0].removesuffix(".py") not in skip:
            yield path


def _violations(skip: frozenset[str] = TOP) -> list[str]:
    found = []
    for path in _product_modules(skip):
        for line, target in _imports(path):
            parts = target.split(".")
            if parts[0] == "fjord" and len(parts) > 1 and parts[1] in TOP:
                found.append(f"{path.relative_to(SRC.parent)}:{line}: imports {target}")
    return sorted(set(found))


def test_no_product_package_imports_cli_or_devcluster() -> None:
    assert _violations() == []


def test_the_rule_sees_every_package_and_every_form_of_import(tmp_path: Path) -> None:
    checked = {path.relative_to(SRC).parts[0] for path in _product_modules()}
    assert {"render", "control", "api", "stores", "spec", "operators", "releases.py"} <= checked
    sample = tmp_path / "fjord" / "render" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "import fjord.cli.main\n"
        "from fjord import devcluster\n"
        "from ..devcluster.binaries import bin_dir\n"
        "def f():\n    from fjord.cli import app\n"
    )
    targets = [target for _, target in _imports(sample, tmp_path / "fjord")]
    assert "fjord.cli.main" in targets
    assert "fjord.devcluster" in targets
    assert "fjord.devcluster.binaries" in targets
    assert "fjord.cli" in targets
