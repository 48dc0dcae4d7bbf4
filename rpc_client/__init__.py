"""A JSON-RPC 2.0 client over one WebSocket: many concurrent calls, each answer to its own caller.

>>> from rpc_client import Client
>>> async def main():
...     async with Client("ws://127.0.0.1:8000/ws") as client:
...         print(await client.call("multiply", 3, 4))

Server push, on this project's server: ``async for part in client.stream("count", 5)``,
``await client.call("long_task", 2, progress=callback)``, and
``async with client.subscribe("clock") as events: async for event in events``;
cancelling the task awaiting a call cancels it on the server.

The layers: :mod:`.client` (the asyncio client, its reader task and
reconnection), :mod:`.batch`, :mod:`.streams` and :mod:`.subscription`;
:mod:`.messages`, :mod:`.pending` and :mod:`.push` (building requests,
matching answers and pushed notifications to callers; no I/O);
:mod:`.transport` (the boundary) with :mod:`.websocket` and :mod:`.memory`
under it; :mod:`.sync` (the blocking facade); :mod:`.backoff`, :mod:`.errors`
and :mod:`.cli`.
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
    StreamError,
)
from .memory import MemoryConnector, MemoryTransport
from .messages import Params, unwrap
from .push import Event
from .subscription import Subscription
from .sync import SyncClient, SyncSubscription, connect_sync
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
    "Event",
    "MemoryConnector",
    "MemoryTransport",
    "Ok",
    "Params",
    "ProtocolError",
    "RpcClientError",
    "RpcConnectionError",
    "RpcError",
    "StreamError",
    "Subscription",
    "SyncClient",
    "SyncSubscription",
    "Transport",
    "connect_sync",
    "unwrap",
]
