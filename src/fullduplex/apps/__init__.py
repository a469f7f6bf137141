"""Ready applications: echo, chat rooms, and their assembly for ``fullduplex serve``."""

from __future__ import annotations

from .app import App, AppServer, build_app, serve_app
from .chat import ChatPolicy, ChatServer
from .echo import echo
from .stats import EndpointStats, Stats

__all__ = [
    "App",
    "AppServer",
    "ChatPolicy",
    "ChatServer",
    "EndpointStats",
    "Stats",
    "build_app",
    "echo",
    "serve_app",
]
