"""The sans-I/O core imports no I/O, clock or randomness (STYLE E1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fullduplex

PACKAGE = Path(fullduplex.__file__).parent
FORBIDDEN = {"asyncio", "socket", "ssl", "time", "random", "secrets", "threading", "selectors"}

PURE_MODULES = sorted(
    [
        *(PACKAGE / "protocol").rglob("*.py"),
        *(
            p
            for p in (PACKAGE / "stomp" / "frames.py", PACKAGE / "stomp" / "session.py")
            if p.exists()
        ),
    ]
)


def imported_modules(tree: ast.AST) -> set[str]:
    """Top-level names of every absolute module imported anywhere in ``tree``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def test_the_core_modules_are_found() -> None:
    names = {p.name for p in PURE_MODULES}
    assert {"connection.py", "frames.py", "mask.py", "utf8.py", "events.py"} <= names


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = imported_modules(tree) & FORBIDDEN
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import time as t",
        "from socket import socket",
        "import os, ssl",
        "from random import randbytes",
        "import selectors.x",
        "def f():\n    import threading",
        "importlib.import_module('secrets')",
        "__import__('time')",
    ],
)
def test_the_check_catches(source: str) -> None:
    assert imported_modules(ast.parse(source)) & FORBIDDEN
