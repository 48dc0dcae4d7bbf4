"""The kit's side of the wire against misbehaving servers: every wait ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from rpc_server.conformance.judge import Deviation
from rpc_server.conformance.peer import Peer

WAIT = 10  # seconds: a bound on a wait that must end within the kit's own timeout (0.5 s here)


def chatter(ws: ServerConnection) -> None:
    """Never answers: pushes a notification every 20 ms until the connection closes."""
    try:
        while True:
            ws.send('{"jsonrpc": "2.0", "method": "tick"}')
            time.sleep(0.02)
    except ConnectionClosed:
        return


@pytest.fixture
def chatty_url() -> Iterator[str]:
    with serve(chatter, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        yield f"ws://{host}:{port}"
        server.shutdown()
        thread.join(WAIT)


def test_a_server_that_keeps_talking_and_never_answers_the_probe_fails_the_case(chatty_url: str) -> None:
    """Notifications faster than --rpc-timeout do not keep the probe waiting: one deadline bounds the whole wait."""
    outcome: list[BaseException] = []

    def probe() -> None:
        with Peer(chatty_url, timeout=0.5) as peer:
            try:
                peer.probe()
            except Deviation as exc:
                outcome.append(exc)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "the probe is still waiting"
    assert outcome and "no answer to the kit's probe" in str(outcome[0])
