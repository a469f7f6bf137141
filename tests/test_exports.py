"""Public names: ``fullduplex.__all__`` sorted and complete, every module's ``__all__`` real."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import fullduplex


def public_modules() -> list[str]:
    """Every importable ``fullduplex`` module whose dotted name has no ``_`` part."""
    names = []
    for info in pkgutil.walk_packages(fullduplex.__path__, "fullduplex."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private, or __main__ (which would run the command)
        names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = public_modules()


def test_all_is_sorted_and_unique() -> None:
    assert fullduplex.__all__ == sorted(fullduplex.__all__)
    assert len(set(fullduplex.__all__)) == len(fullduplex.__all__)


@pytest.mark.parametrize("name", fullduplex.__all__)
def test_each_top_level_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from fullduplex import {name}", namespace)
    assert namespace[name] is getattr(fullduplex, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from fullduplex import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == fullduplex.__all__


def test_all_covers_every_public_object_defined_in_the_package() -> None:
    """Nothing public sits in the top-level namespace without being in ``__all__``."""
    missing = [
        name
        for name, value in vars(fullduplex).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("fullduplex")
        and name not in fullduplex.__all__
    ]
    assert not missing


def test_the_core_api_is_exported() -> None:
    for name in (
        "serve",
        "connect",
        "Connection",
        "Server",
        "ConnectionClosed",
        "ConnectionClosedOK",
        "ConnectionClosedError",
        "InvalidStatus",
        "InvalidURI",
        "CloseCode",
        "State",
    ):
        assert name in fullduplex.__all__, name


def test_version() -> None:
    assert isinstance(fullduplex.__version__, str) and fullduplex.__version__


def test_the_walk_finds_the_public_modules() -> None:
    assert {
        "fullduplex.errors",
        "fullduplex.http",
        "fullduplex.routing",
        "fullduplex.server",
        "fullduplex.client",
        "fullduplex.connection",
        "fullduplex.cli",
        "fullduplex.protocol",
        "fullduplex.io.protocol",
    } <= set(PUBLIC_MODULES)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_module_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        # Only a namespace-like package with nothing public may go without __all__.
        public = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType)
        ]
        assert not public, f"{module_name} has public names {public} but no __all__"
        return
    assert all(isinstance(n, str) for n in exported)
    assert len(set(exported)) == len(exported), f"duplicates in {module_name}.__all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{module_name}.__all__ names missing attributes: {missing}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_module_all_names_are_not_stray_imports(module_name: str) -> None:
    """A name exported by a module is defined in the package, not re-exported stdlib."""
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("fullduplex"), (module_name, name)
