"""The package's layers, read from the source with ``ast``: lower layers never import upper ones.

::

    errors            imports nothing from the package
    protocol/         sans-I/O core: protocol/ and errors only
    io/               asyncio adapter: io/, protocol/ and errors only
    stomp/frames.py   STOMP codec and session: stomp/ and errors only
    stomp/session.py
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fullduplex

SRC = Path(fullduplex.__file__).resolve().parent
PACKAGE = "fullduplex"

# The C twin of protocol/'s pure-Python kernels lives at the top of the package
# (one compiled module); only the chooser protocol/_accel.py may import it.
C_SPEEDUPS = "fullduplex._speedups"


def module_name(path: Path) -> tuple[str, bool]:
    """Dotted name of a source file, and whether it is a package ``__init__``."""
    parts = [PACKAGE, *path.relative_to(SRC).with_suffix("").parts]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imports_of(source: str, name: str, is_package: bool) -> set[str]:
    """Every ``fullduplex`` module (or name) imported by ``source``, relative ones resolved.

    Imports under ``if TYPE_CHECKING:`` count too: a layer should not even need the
    types of the layers above it.
    """
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                assert base, f"{name}: relative import above the package"
                if node.module:
                    found.add(".".join([*base, node.module]))
                else:  # from . import x: x may be a module
                    found.update(".".join([*base, a.name]) for a in node.names)
            elif node.module and node.module.split(".")[0] == PACKAGE:
                found.add(node.module)
    return found


def package_imports(path: Path) -> set[str]:
    name, is_package = module_name(path)
    return imports_of(path.read_text(encoding="utf-8"), name, is_package)


def within(module: str, *allowed: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


SOURCES = sorted(SRC.rglob("*.py"))


def files_under(prefix: str) -> list[Path]:
    return [p for p in SOURCES if module_name(p)[0] == prefix or within(module_name(p)[0], prefix)]


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(SRC)) for p in paths]


def test_the_walk_sees_the_package() -> None:
    names = {module_name(p)[0] for p in SOURCES}
    assert {
        "fullduplex.errors",
        "fullduplex.protocol.connection",
        "fullduplex.io.protocol",
        "fullduplex.stomp.frames",
        "fullduplex.stomp.session",
    } <= names
    # The resolver itself: io/protocol.py imports the core and errors relatively.
    deps = package_imports(SRC / "io" / "protocol.py")
    assert "fullduplex.errors" in deps
    assert "fullduplex.protocol.connection" in deps


def test_errors_imports_nothing_from_the_package() -> None:
    assert package_imports(SRC / "errors.py") == set()


PROTOCOL = files_under("fullduplex.protocol")


@pytest.mark.parametrize("path", PROTOCOL, ids=ids(PROTOCOL))
def test_protocol_imports_only_protocol_and_errors(path: Path) -> None:
    allowed = ["fullduplex.protocol", "fullduplex.errors"]
    if path.name == "_accel.py":
        allowed.append(C_SPEEDUPS)
    bad = {m for m in package_imports(path) if not within(m, *allowed)}
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


IO = files_under("fullduplex.io")


@pytest.mark.parametrize("path", IO, ids=ids(IO))
def test_io_imports_only_io_protocol_and_errors(path: Path) -> None:
    allowed = ["fullduplex.io", "fullduplex.protocol", "fullduplex.errors"]
    bad = {m for m in package_imports(path) if not within(m, *allowed)}
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


STOMP_CORE = [SRC / "stomp" / "frames.py", SRC / "stomp" / "session.py"]


@pytest.mark.parametrize("path", STOMP_CORE, ids=ids(STOMP_CORE))
def test_stomp_codec_and_session_import_only_stomp_and_errors(path: Path) -> None:
    bad = {
        m for m in package_imports(path) if not within(m, "fullduplex.stomp", "fullduplex.errors")
    }
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_the_resolver_sees_every_import_form() -> None:
    source = (
        "import asyncio\n"
        "import fullduplex.server\n"
        "from fullduplex.http import response\n"
        "from ..io.protocol import WebSocketProtocol\n"
        "from . import frames\n"
        "from .mask import apply_mask\n"
        "from .. import errors\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..connection import Connection\n"
        "def late():\n"
        "    from ..client import connect\n"
    )
    found = imports_of(source, "fullduplex.protocol.probe", is_package=False)
    assert found == {
        "fullduplex.server",
        "fullduplex.http",
        "fullduplex.io.protocol",
        "fullduplex.protocol.frames",
        "fullduplex.protocol.mask",
        "fullduplex.errors",
        "fullduplex.connection",
        "fullduplex.client",
    }
    assert imports_of("from . import x", "fullduplex.io", is_package=True) == {"fullduplex.io.x"}
