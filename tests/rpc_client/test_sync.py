"""The blocking facade's batch and in_flight, against a real server in a thread (issue 8, item 9)."""

from __future__ import annotations

import threading
import time

import pytest

from rpc_client import CallTimeout, ClientClosedError, RpcError, SyncBatch, connect_sync


def test_a_sync_batch_is_sent_when_its_block_ends_and_each_call_has_its_outcome(threaded_server):
    """`with client.batch() as batch:` sends one batch on leaving; results and errors land on each call's handle."""
    with connect_sync(threaded_server) as client:
        with client.batch() as batch:
            assert isinstance(batch, SyncBatch)
            product = batch.call("multiply", 3, 4)
            batch.notify("add", 1, 2)
            quotient = batch.call("divide", 1, 0)
            assert not product.done  # nothing is sent before the block ends
        assert product.result() == 12
        with pytest.raises(RpcError) as caught:
            quotient.result()
        assert caught.value.code == 1001
        assert client.in_flight == 0


def test_a_sync_batch_left_by_an_exception_is_not_sent(threaded_server):
    """An exception inside the block leaves the batch unsent, and no call waits."""
    with connect_sync(threaded_server) as client:
        with pytest.raises(KeyError):
            with client.batch() as batch:
                product = batch.call("multiply", 3, 4)
                raise KeyError("changed my mind")
        assert not product.done
        assert client.in_flight == 0


def test_sync_batch_send_returns_the_outcomes_in_order(threaded_server):
    """send() on a sync batch returns results and errors as values, in the order the calls were added."""
    with connect_sync(threaded_server) as client:
        batch = client.batch(timeout=5)
        batch.call("add", 1, 2)
        batch.call("nope")
        results = batch.send()
        assert results[0] == 3 and isinstance(results[1], RpcError)
        with pytest.raises(RuntimeError, match="already sent"):
            batch.send()


def test_in_flight_counts_the_calls_waiting_from_other_threads(threaded_server):
    """in_flight is 1 while another thread waits on a slow call; closing fails that call and leaves 0."""
    client = connect_sync(threaded_server, timeout=30)
    outcome: list[BaseException] = []

    def slow_call() -> None:
        try:
            client.call("sleep", 10, "late")  # the longest sleep the server allows
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=slow_call)
    worker.start()
    deadline = time.monotonic() + 10
    while client.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert client.in_flight == 1
    client.close()
    worker.join(timeout=10)
    assert [type(exc) for exc in outcome] == [ClientClosedError]
    assert client.in_flight == 0


def test_sync_notification_sends_params_as_they_go_on_the_wire(threaded_server):
    """notification() with a dict of params is sent; the connection stays usable."""
    with connect_sync(threaded_server) as client:
        client.notification("subtract", {"minuend": 1, "subtrahend": 2})
        assert client.call("add", 1, 2) == 3


def test_connect_sync_can_run_its_loop_on_uvloop(threaded_server):
    """loop_factory=uvloop.new_event_loop runs the facade's loop on uvloop."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop comes with the bench and speed extras")
    with connect_sync(threaded_server, loop_factory=uvloop.new_event_loop) as client:
        assert client.call("multiply", 3, 4) == 12
        assert isinstance(client._shared.loop, uvloop.Loop)


def test_a_sync_call_times_out_with_call_timeout(threaded_server):
    """A call on the blocking facade not answered within its timeout raises CallTimeout, and nothing stays in flight."""
    with connect_sync(threaded_server) as client:
        with pytest.raises(CallTimeout, match=r"no answer to 'sleep' within 0\.1 s"):
            client.call("sleep", 5, timeout=0.1)
        assert client.in_flight == 0
        assert client.call("add", 1, 2) == 3
