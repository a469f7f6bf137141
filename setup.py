"""Build the optional C accelerator; all package metadata lives in pyproject.toml.

``FULLDUPLEX_BUILD_EXTENSION`` decides what happens to ``fullduplex._speedups``:

- unset (default): try to build it; without a compiler, install pure Python.
- ``yes``: build it or fail the install (CI and release builds).
- ``no``: do not build it (pure-Python install).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

MODE = os.environ.get("FULLDUPLEX_BUILD_EXTENSION", "").strip().lower()
if MODE not in ("", "yes", "no"):
    sys.exit(f"FULLDUPLEX_BUILD_EXTENSION must be 'yes', 'no' or unset, not {MODE!r}")

if sys.platform == "win32":
    COMPILE_ARGS: list[str] = ["/O2"]
else:
    COMPILE_ARGS = ["-O2", "-Wall", "-Wextra"]

ext_modules = []
if MODE != "no" and sys.implementation.name == "cpython":
    ext_modules.append(
        Extension(
            "fullduplex._speedups",
            sources=["src/fullduplex/_speedups.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=MODE != "yes",
        )
    )

setup(ext_modules=ext_modules)
