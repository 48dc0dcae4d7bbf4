"""The deadlines and rates of issue 9, and the flags that set every new limit.

``call_timeout_s`` cancels a call that runs too long and answers -32002;
``rate_limit_calls_per_s`` answers -32005 with ``data.retry_after`` past the
rate, per connection, or per identity across its connections once the
handshake gave one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.http11 import Request

from rpc_server import ConfigError, Dispatcher, Limits, builtin_tools, cli, codes
from rpc_server.handshake import Admission
from rpc_server.ratelimit import RateLimiter, TokenBucket
from rpc_server.session import Session

from .harness import WAIT, call, request


async def answer(d: Dispatcher, message: str, session: Session | None = None) -> Any:
    async with asyncio.timeout(WAIT):
        reply = await d.dispatch_async(message, session or Session())
    return orjson.loads(reply) if reply is not None else None


# -- call timeout ----------------------------------------------------------------------------


def timed_tools() -> tuple[Any, list[str]]:
    seen: list[str] = []
    registry = builtin_tools()

    @registry.tool
    async def stubborn() -> str:
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "finished"

    @registry.tool(blocking=True)
    def grind() -> str:
        time.sleep(0.5)
        return "ground"

    @registry.tool
    async def drip():  # type: ignore[no-untyped-def]
        for i in range(100):
            await asyncio.sleep(0.05)
            yield i

    return registry, seen


@pytest.mark.parametrize("method", ["stubborn", "grind", "drip"], ids=["async", "blocking", "generator"])
async def test_a_call_over_the_call_timeout_is_cancelled_and_answered_32002(method: str) -> None:
    """call_timeout_s=0.1: an async tool, a blocking one and a generator each answer -32002 naming the limit."""
    registry, seen = timed_tools()
    d = Dispatcher(registry, limits=Limits(call_timeout_s=0.1))
    assert await answer(d, request(method, None, 1)) == {
        "jsonrpc": "2.0",
        "error": {
            "code": codes.CALL_TIMED_OUT,
            "message": "Call timed out",
            "data": "the call ran longer than 0.1 s and was cancelled",
        },
        "id": 1,
    }
    if method == "stubborn":
        assert seen == ["cancelled"]


async def test_in_a_batch_only_the_slow_member_times_out() -> None:
    """A batch of a slow call and a quick one: -32002 for the first, the result for the second."""
    registry, _ = timed_tools()
    d = Dispatcher(registry, limits=Limits(call_timeout_s=0.1))
    reply = await answer(d, "[" + request("stubborn", None, 1) + "," + request("sleep", [0.01, "ok"], 2) + "]")
    assert [r.get("result", r.get("error", {}).get("code")) for r in reply] == [codes.CALL_TIMED_OUT, "ok"]


async def test_without_a_call_timeout_slow_calls_run_to_their_end() -> None:
    """The default is no timeout: sleep(0.3) answers its value."""
    d = Dispatcher(builtin_tools())
    assert (await answer(d, request("sleep", [0.3, "late"], 1)))["result"] == "late"


async def test_the_call_timeout_reaches_calls_over_a_socket(start_server: Any) -> None:
    """Set on the server's limits, it applies to each connection's calls."""
    server = await start_server(call_timeout_s=0.1)
    async with connect(server.url) as ws:
        assert (await call(ws, "sleep", [5], 1))["error"]["code"] == codes.CALL_TIMED_OUT
        assert (await call(ws, "multiply", [6, 7], 2))["result"] == 42


# -- rate limits -------------------------------------------------------------------------------


def test_a_bucket_gives_its_burst_then_one_call_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """rate 2/s, burst 3: three calls at once, then one every half second; retry_after says when."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == 0.5
    now[0] += 0.25
    assert not bucket.take() and bucket.retry_after() == 0.25
    now[0] += 0.25
    assert bucket.take()
    now[0] += 60
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]  # never more than the burst


def test_buckets_are_shared_by_identity_and_private_to_anonymous_connections() -> None:
    """Two connections of one identity share a bucket; anonymous ones get one each; off gives none."""
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.bucket("alice") is limiter.bucket("alice")
    assert limiter.bucket("alice") is not limiter.bucket("bob")
    assert limiter.bucket(None) is not limiter.bucket(None)
    assert RateLimiter(rate=None, burst=1).bucket("alice") is None


async def test_past_the_rate_a_call_is_answered_32005_with_retry_after(start_server: Any) -> None:
    """rate 1/s, burst 3: a batch of 5 gets 3 results and 2 -32005 whose retry_after is under a second."""
    server = await start_server(rate_limit_calls_per_s=1.0, rate_limit_burst_calls=3)
    async with connect(server.url) as ws:
        await ws.send("[" + ",".join(request("multiply", [i, 2], i) for i in range(5)) + "]")
        async with asyncio.timeout(WAIT):
            batch = orjson.loads(await ws.recv())
    assert [r.get("result") for r in batch[:3]] == [0, 2, 4]
    for refused in batch[3:]:
        assert refused["error"]["code"] == codes.RATE_LIMITED and refused["error"]["message"] == "Rate limited"
        assert 0 < refused["error"]["data"]["retry_after"] <= 1.0


async def test_rpc_cancel_is_never_rate_limited(start_server: Any) -> None:
    """With the rate spent on a call, rpc.cancel of that call still reaches it: -32800."""
    server = await start_server(rate_limit_calls_per_s=0.1, rate_limit_burst_calls=1)
    async with connect(server.url) as ws:
        await ws.send(request("sleep", [WAIT], "slow"))
        await ws.send(request("rpc.cancel", {"id": "slow"}))
        async with asyncio.timeout(WAIT):
            assert orjson.loads(await ws.recv())["error"]["code"] == codes.REQUEST_CANCELLED
        assert (await call(ws, "multiply", [1, 1], 2))["error"]["code"] == codes.RATE_LIMITED


async def test_rpc_cancel_spends_none_of_the_rate(start_server: Any) -> None:
    """Burst 2: two rpc.cancel first, and both calls after them still run (a cancel is not charged)."""
    server = await start_server(rate_limit_calls_per_s=0.1, rate_limit_burst_calls=2)
    async with connect(server.url) as ws:
        assert (await call(ws, "rpc.cancel", {"id": "x"}, 1))["result"] is False
        assert (await call(ws, "rpc.cancel", {"id": "y"}, 2))["result"] is False
        assert (await call(ws, "multiply", [2, 3], 3))["result"] == 6
        assert (await call(ws, "multiply", [2, 4], 4))["result"] == 8
        assert (await call(ws, "multiply", [2, 5], 5))["error"]["code"] == codes.RATE_LIMITED


async def test_a_rate_limited_notification_is_dropped_silently(start_server: Any) -> None:
    """Past the rate, a notification is neither run nor answered; the next call still hears -32005."""
    server = await start_server(rate_limit_calls_per_s=0.1, rate_limit_burst_calls=1)
    async with connect(server.url) as ws:
        await ws.send(request("multiply", [1, 1]))  # spends the one call
        await ws.send(request("multiply", [1, 1]))  # over: dropped, nothing said
        assert (await call(ws, "multiply", [2, 2], 3))["error"]["code"] == codes.RATE_LIMITED


async def test_connections_of_one_identity_share_its_rate(start_server: Any) -> None:
    """Once authentication names the caller, opening a second connection buys no more calls."""
    server = await start_server(rate_limit_calls_per_s=0.1, rate_limit_burst_calls=2)

    def identify(request_: Request, admission: Admission) -> None:
        admission.identity = request_.headers.get("X-Test-User")

    server.handshake.gates.append(identify)
    alice = {"X-Test-User": "alice"}
    async with (
        connect(server.url, additional_headers=alice) as a1,
        connect(server.url, additional_headers=alice) as a2,
        connect(server.url, additional_headers={"X-Test-User": "bob"}) as bob,
    ):
        assert (await call(a1, "multiply", [1, 1], 1))["result"] == 1
        assert (await call(a2, "multiply", [1, 1], 2))["result"] == 1
        assert (await call(a2, "multiply", [1, 1], 3))["error"]["code"] == codes.RATE_LIMITED
        assert (await call(a1, "multiply", [1, 1], 4))["error"]["code"] == codes.RATE_LIMITED
        assert (await call(bob, "multiply", [1, 1], 5))["result"] == 1


# -- the flags ---------------------------------------------------------------------------------

FLAGS = [
    ("--max-in-flight-size", "RPC_MAX_IN_FLIGHT_SIZE", "4096", "max_in_flight_bytes", 4096),
    ("--max-response-size", "RPC_MAX_RESPONSE_SIZE", "65536", "max_response_bytes", 65536),
    ("--max-gathered-parts", "RPC_MAX_GATHERED_PARTS", "500", "max_gathered_parts", 500),
    ("--max-send-buffer", "RPC_MAX_SEND_BUFFER", "8192", "max_send_buffer_bytes", 8192),
    ("--max-connections", "RPC_MAX_CONNECTIONS", "50", "max_connections", 50),
    ("--max-subscriptions-total", "RPC_MAX_SUBSCRIPTIONS_TOTAL", "9", "max_subscriptions_total", 9),
    ("--call-timeout", "RPC_CALL_TIMEOUT", "2.5", "call_timeout_s", 2.5),
    ("--rate-limit", "RPC_RATE_LIMIT", "100", "rate_limit_calls_per_s", 100.0),
    ("--rate-burst", "RPC_RATE_BURST", "20", "rate_limit_burst_calls", 20),
    ("--drain-timeout", "RPC_DRAIN_TIMEOUT", "3", "drain_timeout_s", 3.0),
]


@pytest.mark.parametrize(("flag", "env", "text", "field", "value"), FLAGS, ids=[f[0] for f in FLAGS])
def test_each_new_limit_is_set_by_its_flag_and_by_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, flag: str, env: str, text: str, field: str, value: object
) -> None:
    """The flag, or else its RPC_* variable, fills in its Limits field."""
    assert getattr(cli.limits_from(cli.build_parser().parse_args([flag, text])), field) == value
    monkeypatch.setenv(env, text)
    assert getattr(cli.limits_from(cli.build_parser().parse_args([])), field) == value


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--max-message-size", "10"], "argument --max-message-size: must be at least 64 bytes, not 10"),
        (["--max-response-size", "100"], "argument --max-response-size: must be at least 1024 bytes, not 100"),
    ],
)
def test_a_size_below_what_any_message_needs_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No request fits in 10 bytes, no error answer in 100: refused with status 2, naming the flag."""
    assert cli.main(argv, prog="rpc-server") == 2
    assert f"rpc-server: error: {said}\n" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("limits", "said"),
    [
        ({"max_message_bytes": 10}, "max_message_bytes must be at least 64"),
        ({"max_batch": 0}, "max_batch must be more than 0, not 0"),
        ({"max_batch": "10"}, "max_batch must be a number, not '10'"),
        ({"call_timeout_s": float("nan")}, "call_timeout_s must be more than 0, not nan"),
    ],
)
def test_limits_out_of_range_raise_the_package_s_config_error(limits: dict[str, Any], said: str) -> None:
    """Limits(...) refuses a limit with ConfigError (a ValueError too), a string included, never a bare TypeError."""
    with pytest.raises(ConfigError, match=said):
        Limits(**limits)


@pytest.mark.parametrize("flag", ["--call-timeout", "--rate-limit", "--drain-timeout"])
def test_a_rate_or_a_time_that_is_not_above_zero_is_a_usage_error(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 is not a timeout nor a rate: status 2, with a sentence."""
    assert cli.main([flag, "0"], prog="rpc-server") == 2
    assert "must be more than 0" in capsys.readouterr().err
