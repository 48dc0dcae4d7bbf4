"""The benchmark harness: this project's server side by side with the limit and the peers.

Run it with ``python -m benchmarks`` (about five minutes) or ``python -m benchmarks --quick``
(seconds; what CI runs to keep the harness working). See :mod:`benchmarks.cli` for the flags
and :mod:`benchmarks.scenarios` for what each figure means.
"""

from __future__ import annotations

__all__: list[str] = []
