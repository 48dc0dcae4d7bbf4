"""The harness that runs the documents' blocks: each kind passes what it shows and fails on drift."""

from __future__ import annotations

import textwrap
import unittest
from pathlib import Path

import pytest
from sybil.example import SybilFailure

from tests.docs.blocks import make_sybil
from tests.docs.console import parse_console
from tests.docs.page import mismatch, setup_page, teardown_page
from tests.docs.wire import parse_wire


def run_page(tmp_path: Path, markdown: str) -> list[str | None]:
    """Evaluate every block of a page, in order: None for each that passed, else why it failed."""
    path = tmp_path / "page.md"
    path.write_text(textwrap.dedent(markdown))
    document = make_sybil().parse(path)
    setup_page(document.namespace)
    results: list[str | None] = []
    try:
        for example in document.examples():
            try:
                example.evaluate()
            except SybilFailure as failure:
                results.append(failure.result)
            except unittest.SkipTest as skip:
                results.append(f"skipped: {skip}")
            else:
                results.append(None)
    finally:
        teardown_page(document.namespace)
    return results


def test_mismatch_accepts_ellipsis_and_trailing_spaces_and_shows_both_texts_otherwise():
    """``...`` matches across lines and trailing spaces do not count; a real difference shows both texts."""
    assert mismatch("a ...\nz\n", "a b\nc\nz  \n\n") is None
    problem = mismatch("12\n", "13\n")
    assert problem is not None and "12" in problem and "13" in problem


def test_a_python_block_whose_output_is_shown_passes_and_one_that_drifted_fails(tmp_path):
    """The output block is compared with what the python block printed."""
    results = run_page(
        tmp_path,
        """
        ```python
        print(3 * 4)
        ```

        ```output
        12
        ```

        ```python
        print(3 * 4)
        ```

        ```output
        13
        ```
        """,
    )
    assert results[:3] == [None, None, None]
    assert results[3] is not None and "13" in results[3] and "12" in results[3]


def test_a_python_block_that_prints_with_no_output_block_fails(tmp_path):
    """Printed output must be shown: the next block fails when it was not."""
    results = run_page(
        tmp_path,
        """
        ```python
        print("hidden")
        ```

        ```python
        x = 1
        ```
        """,
    )
    assert results[0] is None
    assert results[1] is not None and "hidden" in results[1]


def test_printing_at_the_end_of_a_page_with_no_output_block_fails_at_teardown(tmp_path):
    """The last block of a page cannot print unseen either."""
    with pytest.raises(AssertionError, match="no ```output block"):
        run_page(tmp_path, "```python\nprint('hidden')\n```\n")


def test_a_python_block_talks_to_the_pages_server_under_the_examples_address(tmp_path):
    """ws://127.0.0.1:8000/ws in the source reaches the page's server, and reads as that in the output."""
    results = run_page(
        tmp_path,
        """
        ```python
        import asyncio
        from rpc_client import Client

        async def main():
            async with Client("ws://127.0.0.1:8000/ws") as client:
                print(await client.call("multiply", 3, 4))
                try:
                    await client.call("sleep", 1, timeout=0.05)
                except TimeoutError as exc:
                    print(exc)

        asyncio.run(main())
        ```

        ```output
        12
        no answer to 'sleep' within 0.05 s (ws://127.0.0.1:8000/ws)
        ```
        """,
    )
    assert results == [None, None]


def test_console_commands_share_one_shell_and_their_output_is_compared(tmp_path):
    """State and exit statuses carry from command to command; a wrong output fails, naming the command."""
    results = run_page(
        tmp_path,
        """
        ```console
        $ export GREETING=hello
        $ echo $GREETING; false
        hello
        $ echo $?
        1
        $ rpc-client multiply 3 4
        12
        ```

        ```console
        $ rpc-client add 1 2
        4
        ```
        """,
    )
    assert results[0] is None
    assert results[1] is not None and "$ rpc-client add 1 2" in results[1] and "3" in results[1]


def test_a_console_server_command_serves_the_rest_of_the_page(tmp_path):
    """A server started in a block runs on a free port, shows its address as written, and serves what follows."""
    results = run_page(
        tmp_path,
        """
        ```python file=mytools.py
        from rpc_server import Registry

        registry = Registry()

        @registry.tool
        def shout(text: str) -> str:
            return text.upper()
        ```

        ```console
        $ python -m rpc_server --no-builtins --tools mytools:registry --port 9000
        listening on ws://127.0.0.1:9000/ws
        $ rpc-client --url ws://127.0.0.1:9000/ws shout hi
        "HI"
        $ rpc-client multiply 3 4
        error -32601: Method not found: multiply
        ```

        ```console
        $ python -m rpc_server --port 70000
        ...error: argument --port: must be from 0 to 65535, not 70000
        ```
        """,
    )
    assert results == [None, None, None]


def test_a_wire_transcript_passes_as_shown_and_fails_on_a_different_frame(tmp_path):
    """Frames are sent as written and compared as text, continuation lines included."""
    results = run_page(
        tmp_path,
        """
        ```wire
        → [{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
           {"jsonrpc": "2.0", "method": "add", "params": [3, 4], "id": 2}]
        ← [{"jsonrpc":"2.0","result":3,"id":1},
           {"jsonrpc":"2.0","result":7,"id":2}]
        ```

        ```wire
        → {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1}
        ← {"jsonrpc":"2.0","result":4,"id":1}
        ```
        """,
    )
    assert results[0] is None
    assert results[1] is not None and '"result":3' in results[1]


def test_a_wire_transcript_that_leaves_an_answer_unshown_fails(tmp_path):
    """A frame the transcript does not show is caught by the probe after its last line."""
    results = run_page(
        tmp_path,
        """
        ```wire
        → {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1}
        ```
        """,
    )
    assert results[0] is not None and "does not show" in results[0]


def test_an_ellipsis_line_in_a_wire_transcript_lets_frames_pass(tmp_path):
    """``…`` lets frames go by until the next expected one arrives."""
    results = run_page(
        tmp_path,
        """
        ```wire
        → {"jsonrpc": "2.0", "method": "count", "params": [5], "id": 1, "stream": true}
        ← {"jsonrpc":"2.0","method":"rpc.part","params":{"id":1,"value":1}}
           … parts 2 to 5 …
        ← {"jsonrpc":"2.0","result":5,"id":1}
        ```
        """,
    )
    assert results == [None]


def test_a_block_of_unknown_kind_fails_and_a_marked_one_is_skipped_with_its_reason(tmp_path):
    """Every block either runs or is marked on purpose."""
    results = run_page(
        tmp_path,
        """
        ```ini
        [unit]
        ```

        ```
        no info string
        ```

        <!-- skip: next "a systemd unit" -->
        ```ini
        [unit]
        ```
        """,
    )
    assert results[0] is not None and "neither run nor marked" in results[0]
    assert results[1] is not None and "neither run nor marked" in results[1]
    assert results[2:] == [None, "skipped: a systemd unit"]


def test_a_python_file_block_with_a_syntax_error_fails(tmp_path):
    """File blocks are written for later blocks, and compiled when they are Python."""
    with pytest.raises(SyntaxError):
        run_page(tmp_path, "```python file=broken.py\ndef f(:\n```\n")


def test_the_file_map_must_name_every_module_and_only_files_that_exist(tmp_path):
    """A map that omits a module, or names one that is gone, fails."""
    results = run_page(
        tmp_path,
        """
        ```text filemap
        rpc_server/   server.py   the server
                      gone.py     a module that does not exist
        ```
        """,
    )
    assert results[0] is not None
    assert "rpc_server/gone.py does not exist" in results[0]
    assert "rpc_server/connection.py is not in the map" in results[0]


def test_an_exception_tree_must_match_the_classes(tmp_path):
    """A class under the wrong parent, or missing from the tree, fails."""
    results = run_page(
        tmp_path,
        """
        ```text classes=rpc_client
        RpcClientError
         ├── RpcError
         │    └── CallTimeout
         └── RpcConnectionError
        ```
        """,
    )
    assert results[0] is not None
    assert "CallTimeout is not a subclass of RpcError" in results[0]
    assert "ConnectionLost is a RpcClientError of rpc_client missing from the tree" in results[0]


def test_a_diagram_may_name_only_modules_that_exist(tmp_path):
    """A mermaid diagram naming a module that is gone fails."""
    results = run_page(tmp_path, "```mermaid\nflowchart LR\n  A[server.py] --> B[gone.py]\n```\n")
    assert results[0] is not None and "gone.py" in results[0] and "server.py" not in results[0]


def test_parse_console_splits_commands_outputs_and_continuations():
    """``$`` starts a command, a trailing backslash continues it, other lines are its output."""
    commands = parse_console("$ echo a \\\n  b\na b\n$ true\n")
    assert [(c.text, c.expected) for c in commands] == [("echo a \\\n  b", "a b\n"), ("true", "")]
    with pytest.raises(ValueError, match="no '\\$ command' before it"):
        parse_console("output first\n$ true\n")


def test_parse_wire_reads_directions_continuations_and_ellipses():
    """Sent frames keep their lines; expected ones are joined compactly; a trailing ``…`` is an error."""
    frames = parse_wire("→ [1,\n   2]\n← [3,\n   4]\n   … more …\n← 5\n")
    assert [(f.direction, f.text) for f in frames] == [
        ("send", "[1,\n   2]"),
        ("expect", "[3,4]"),
        ("pass", "… more …"),
        ("expect", "5"),
    ]
    with pytest.raises(ValueError):
        parse_wire("← 1\n…\n")
    with pytest.raises(ValueError):
        parse_wire("1\n")
