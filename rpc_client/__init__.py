"""A JSON-RPC 2.0 client over one WebSocket: many concurrent calls, each answer to its own caller.

>>> from rpc_client import Client
>>> async def main():
...     async with Client("ws://127.0.0.1:8000/ws") as client:
...         print(await client.call("multiply", 3, 4))

The layers: :mod:`.client` (the asyncio client, its reader task and
reconnection) and :mod:`.batch`; :mod:`.messages` and :mod:`.pending` (building
requests, matching answers to callers; no I/O); :mod:`.transport` (the
boundary) with :mod:`.websocket` and :mod:`.memory` under it; :mod:`.sync` (the
blocking facade); :mod:`.backoff`, :mod:`.errors` and :mod:`.cli`.
"""

from __future__ import annotations

from jsonrpcclient import Error, Ok

from .backoff import Backoff
from .batch import Batch, BatchCall
from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Client
from .errors import (
    CallTimeout,
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    ProtocolError,
    RpcClientError,
    RpcConnectionError,
    RpcError,
)
from .memory import MemoryConnector, MemoryTransport
from .messages import Params, unwrap
from .sync import SyncClient, connect_sync
from .transport import Connector, Transport

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "Backoff",
    "Batch",
    "BatchCall",
    "CallTimeout",
    "Client",
    "ClientClosedError",
    "ConnectError",
    "ConnectionLost",
    "Connector",
    "Error",
    "MemoryConnector",
    "MemoryTransport",
    "Ok",
    "Params",
    "ProtocolError",
    "RpcClientError",
    "RpcConnectionError",
    "RpcError",
    "SyncClient",
    "Transport",
    "connect_sync",
    "unwrap",
]
