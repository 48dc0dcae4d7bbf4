"""The harness's errors, under one base::

BenchError                 anything that stops a measurement or the run
├── MissingDependency      a package or tool the run needs is not installed
├── ServerStartError       a server process exited or never said where it listens
└── LoadError              the load generator could not finish a measurement in time
"""

from __future__ import annotations

__all__ = ["BenchError", "LoadError", "MissingDependency", "ServerStartError"]


class BenchError(Exception):
    """The base of the harness's errors."""


class MissingDependency(BenchError):
    """A package or tool the run needs is not installed."""


class ServerStartError(BenchError):
    """A server process exited, or did not print its ``listening on`` line in time."""


class LoadError(BenchError):
    """The load generator could not finish a measurement within its time bound."""
