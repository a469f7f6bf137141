"""The STOMP core stays I/O-free, and the package exports what its modules export."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import fullduplex.stomp

MODULES = ["errors", "frames", "session", "destinations"]
# The I/O modules built on the core: exported too, but free to use asyncio.
EXPORTING = [*MODULES, "broker", "client"]
FORBIDDEN = {"asyncio", "socket", "ssl", "time", "random", "secrets", "selectors", "threading"}


@pytest.mark.parametrize("name", MODULES)
def test_no_io_clock_or_randomness_imports(name: str) -> None:
    path = Path(fullduplex.stomp.__file__).parent / f"{name}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN


def test_package_exports_every_module_export() -> None:
    expected: set[str] = set()
    for name in EXPORTING:
        module = importlib.import_module(f"fullduplex.stomp.{name}")
        expected.update(module.__all__)
        for export in module.__all__:
            assert getattr(fullduplex.stomp, export) is getattr(module, export)
    assert set(fullduplex.stomp.__all__) == expected
