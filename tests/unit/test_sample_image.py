"""The sample image carries every fjord module its service imports (and nothing of the emulator)."""

from __future__ import annotations

import ast

from fjord.devcluster import appimages


def test_every_fjord_import_of_the_copied_modules_is_copied_too() -> None:
    files = dict(appimages._fjord_files())
    modules = {
        path.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for path in files
    }
    missing = set()
    for path, source in files.items():
        for node in ast.walk(ast.parse(source)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("fjord") and module not in modules:
                missing.add(f"{path}: {module}")
    assert missing == set()
    assert not any("emulator" in path for path in files)
