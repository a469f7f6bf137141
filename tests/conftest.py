"""Shared test configuration.

``async def`` tests run on a fresh event loop each, under a hard timeout, without a
plugin: a hung test fails instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket

import pytest

ASYNC_TEST_TIMEOUT = float(os.environ.get("FULLDUPLEX_TEST_TIMEOUT", "60"))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    async def main() -> None:
        await asyncio.wait_for(func(**kwargs), ASYNC_TEST_TIMEOUT)

    asyncio.run(main())
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    return free_port()
