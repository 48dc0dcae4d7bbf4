"""The kit's cases, each against a fresh connection to the server named by ``--rpc-url``.

Run as ``pytest --pyargs rpc_server.conformance --rpc-url ws://HOST:PORT/PATH``
(see the package's docstring for the other options).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cases import CASES, Case
from .peer import Peer, check
from .plugin import Settings, settings


@pytest.fixture(scope="session")
def rpc_conformance(pytestconfig: pytest.Config) -> Settings:
    """The kit's options; the run stops at once if the server cannot be reached at all."""
    kit = settings(pytestconfig)
    try:
        kit.connect().close()
    except Exception as exc:
        pytest.exit(f"cannot connect to {kit.url}: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    return kit


@pytest.fixture
def peer(rpc_conformance: Settings) -> Iterator[Peer]:
    with rpc_conformance.connect() as peer:
        yield peer


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_spec(case: Case, rpc_conformance: Settings, peer: Peer) -> None:
    """The server answers this case as the specification's section (the id's prefix) requires."""
    for role in case.needs:
        reason = rpc_conformance.missing(role)
        if reason is not None:
            # Before __tracebackhide__: with this frame hidden, -rs would place the skip in pytest's own code.
            pytest.skip(f"{case.id}: {reason}")
    __tracebackhide__ = True  # a deviation's message says it all
    check(case, peer, rpc_conformance.names, rpc_conformance.slow_params)
