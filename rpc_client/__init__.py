"""A JSON-RPC 2.0 client over one WebSocket: many concurrent calls, each answer to its own caller.

>>> from rpc_client import Client
>>> async def main():
...     async with Client("ws://127.0.0.1:8000/ws") as client:
...         print(await client.call("multiply", 3, 4))

Server push, on this project's server: ``async for part in client.stream("count", 5)``,
``await client.call("long_task", 2, progress=callback)``, and
``async with client.subscribe("clock") as events: async for event in events``;
cancelling the task awaiting a call cancels it on the server.

The layers, each depending only on those below it: :mod:`.cli`;
:mod:`.sync` (the blocking facade, on the loop of :mod:`.sharedloop`); :mod:`.client` (the public asyncio
client); :mod:`.batch`, :mod:`.streams` and :mod:`.subscription`, built on
the :class:`~rpc_client.exchange.Exchange` of :mod:`.exchange`, which
:mod:`.session` (connecting, reconnecting, the calls' fast path) provides;
:mod:`.messages`, :mod:`.pending` and :mod:`.push` (building requests,
matching answers and pushed notifications to callers; no I/O);
:mod:`.transport` (the boundary) with :mod:`.websocket` (the default),
:mod:`.websockets_asyncio` and :mod:`.memory` under it; :mod:`.credentials`
(the token, headers and TLS of the opening handshake), :mod:`.url`,
:mod:`.backoff` and :mod:`.errors`.
"""

from __future__ import annotations

from jsonrpcclient import Error, Ok

from .backoff import Backoff
from .batch import Batch, BatchCall
from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Client
from .errors import (
    AuthenticationError,
    CallTimeout,
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    InvalidURL,
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
from .sync import SyncBatch, SyncClient, SyncSubscription, connect_sync
from .transport import Connector, Transport

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AuthenticationError",
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
    "InvalidURL",
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
    "SyncBatch",
    "SyncClient",
    "SyncSubscription",
    "Transport",
    "connect_sync",
    "unwrap",
]
