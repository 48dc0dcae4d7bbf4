"""A conformance kit for any JSON-RPC 2.0 server over WebSocket, in any language.

::

    pytest --pyargs rpc_server.conformance --rpc-url ws://127.0.0.1:8000/ws

Each case sends the frames of one rule of the specification
(https://www.jsonrpc.org/specification) over a fresh connection, with raw
WebSocket, and compares the answer with the specification's as exact JSON
(:mod:`.judge`); its id names the section it checks (``7:empty-array``,
``5:id-2^53+1``). The cases are data (:mod:`.cases`); :mod:`.peer` runs them;
:mod:`.plugin` holds the options:

- ``--rpc-method ROLE=NAME``: the server's names for ``subtract``, ``sum``,
  ``get_data`` and the slow method (default ``sleep``). Cases that call a
  method the server lacks are skipped, saying which.
- ``--rpc-slow-params JSON``: params that make the slow method take a while (``[0.5]``).
- ``--rpc-timeout SECONDS``, ``--rpc-header 'NAME: VALUE'`` (credentials).
- ``--rpc-deviations FILE``: a server's known deviations, one ``CASE-ID reason``
  a line; those cases are expected failures, and one that passes fails the run.

The documentation, with what the kit finds in a server we did not write, is
``docs/conformance.md``.
"""

from __future__ import annotations

from .cases import CASES, Case
from .judge import Deviation
from .peer import Peer, check

__all__ = ["CASES", "Case", "Deviation", "Peer", "check"]
