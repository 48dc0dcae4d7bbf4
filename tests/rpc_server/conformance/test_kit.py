"""The conformance kit run as its users run it (``pytest --pyargs rpc_server.conformance``), in a pytest of its own.

Against this project's server every case passes; against npm's rpc-websockets
the kit finds the deviations listed in ``rpc_websockets.deviations`` (and
recorded in docs/conformance.md), each an expected failure, and nothing else.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rpc_server import Registry, builtin_tools
from rpc_server.conformance import CASES
from rpc_server.conformance.plugin import read_deviations
from rpc_server.testing import ServerThread
from tests.rpc_client import conftest as client_fixtures

pytest_plugins = ["pytester"]

# The client tests' fixtures: the Node server, and a URL where nothing listens.
rpc_websockets_url = client_fixtures.rpc_websockets_url
unused_url = client_fixtures.unused_url

HERE = Path(__file__).parent
DEVIATIONS = HERE / "rpc_websockets.deviations"
DOC = HERE.parents[2] / "docs" / "conformance.md"
ALL = {case.id for case in CASES}
# A bound on one run of the kit: a few seconds when all is well.
RUN_TIMEOUT = 180
QUIET = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")


def get_data() -> list[object]:
    """The specification's get_data (section 7's batch example)."""
    return ["hello", 5]


def spec_tools() -> Registry:
    """The built-in tools (subtract, sum, sleep...) and get_data: every method the kit calls."""
    tools = builtin_tools()
    tools.add(get_data)
    return tools


def outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """Each case's outcome in a JUnit XML report: passed, failed, error, skipped or xfailed, and its message."""
    found = {}
    for testcase in ET.parse(report).getroot().iter("testcase"):
        name = testcase.get("name", "")
        case = name[name.index("[") + 1 : -1]
        outcome, message = "passed", ""
        for child in testcase:
            if child.tag in ("failure", "error"):
                outcome, message = ("failed" if child.tag == "failure" else "error"), child.get("message", "")
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome, message = ("xfailed" if xfail else "skipped"), child.get("message", "")
        found[case] = (outcome, message)
    return found


def run_kit(
    tmp_path: Path, url: str, *options: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, tuple[str, str]]]:
    """Run the kit against ``url`` from an empty directory, as a user would."""
    report = tmp_path / "kit.xml"
    command = [sys.executable, "-m", "pytest", "--pyargs", "rpc_server.conformance", "--rpc-url", url]
    command += [*QUIET, f"--junitxml={report}"]
    done = subprocess.run([*command, *options], cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return done, outcomes(report) if report.exists() else {}


def test_this_server_passes_every_case(tmp_path: Path) -> None:
    """Served with the methods the kit calls, this project's server answers every case as the specification says."""
    with ServerThread(spec_tools()) as server:
        done, found = run_kit(tmp_path, server.url)
    assert done.returncode == 0, done.stdout
    assert set(found) == ALL
    assert {case: outcome for case, (outcome, _) in found.items() if outcome != "passed"} == {}


def test_rpc_websockets_deviates_where_its_list_says_and_nowhere_else(tmp_path: Path, rpc_websockets_url: str) -> None:
    """Each listed deviation is an expected failure with its reason; every other case passes."""
    deviations = read_deviations(DEVIATIONS)
    done, found = run_kit(tmp_path, rpc_websockets_url, "--rpc-deviations", str(DEVIATIONS), "--rpc-timeout", "2")
    assert done.returncode == 0, done.stdout
    assert set(found) == ALL
    assert {case: found[case] for case in deviations} == {
        case: ("xfailed", reason) for case, reason in deviations.items()
    }
    assert {case for case, (outcome, _) in found.items() if outcome == "passed"} == ALL - set(deviations)


def doc_table(heading: str) -> dict[str, str]:
    """The ``| `id` | text |`` rows of a section of docs/conformance.md."""
    section = DOC.read_text(encoding="utf-8").split(f"\n## {heading}\n")[1].split("\n## ")[0]
    return dict(re.findall(r"^\| `([^`]+)` \| (.+?) \|$", section, re.MULTILINE))


def test_the_documentation_records_what_the_kit_finds_in_rpc_websockets() -> None:
    """docs/conformance.md lists the same deviations, with the same words, as the file the CI run uses."""
    assert doc_table("What it finds in rpc-websockets") == read_deviations(DEVIATIONS)


def test_the_documentation_lists_every_case_with_its_rule() -> None:
    """docs/conformance.md's table of cases is the kit's, in its order."""
    assert list(doc_table("The cases").items()) == [(case.id, case.rule) for case in CASES]


def test_the_documented_command_prints_what_the_documentation_shows(tmp_path: Path) -> None:
    """The console example of docs/conformance.md, against a server of the built-in tools."""
    example = re.search(r"```console\n\$ (.*?)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert example is not None
    command, output = example.groups()
    with ServerThread() as server:
        argv = shlex.split(command.replace("ws://127.0.0.1:8000/ws", server.url))
        assert argv[0] == "pytest"
        env = {**os.environ, "COLUMNS": "80"}
        options = ["-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"]
        done = subprocess.run(
            [sys.executable, "-m", *argv, *options],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
    assert (done.returncode, done.stdout) == (0, output)


def test_a_method_the_server_lacks_skips_the_cases_that_call_it_saying_why(tmp_path: Path) -> None:
    """A server with subtract only: cases calling sum, get_data or the slow method are skipped with the reason."""
    with ServerThread(Registry([builtin_tools()["subtract"]])) as server:
        done, found = run_kit(tmp_path, server.url, "-rs")
    assert done.returncode == 0, done.stdout
    # -rs names each case and the kit's file, not a line of pytest's own code.
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("rpc_server/conformance/test_conformance.py" in line for line in skips), skips
    assert any("7:batch: the server has no method 'sum'" in line for line in skips), skips
    skipped = {case.id for case in CASES if {"sum", "get_data", "slow"} & set(case.needs)}
    assert {case for case, (outcome, _) in found.items() if outcome == "skipped"} == skipped
    assert found["7:batch"][1].endswith(
        "the server has no method 'sum' (it answers -32601 Method not found); "
        "if it has one under another name, give --rpc-method sum=NAME"
    )
    assert {case for case, (outcome, _) in found.items() if outcome == "passed"} == ALL - skipped


def test_methods_are_called_by_the_names_the_server_gives_them(tmp_path: Path) -> None:
    """--rpc-method maps each role to the server's own name, and every case passes."""
    builtins = builtin_tools()
    renamed = Registry()
    for role, name in [("subtract", "minus"), ("sum", "total"), ("sleep", "wait")]:
        renamed.add(builtins[role].fn, name=name, schema=builtins[role].schema)
    renamed.add(get_data, name="data")
    names = ["subtract=minus", "sum=total", "slow=wait", "get_data=data"]
    with ServerThread(renamed) as server:
        done, found = run_kit(tmp_path, server.url, *(f"--rpc-method={name}" for name in names))
    assert done.returncode == 0, done.stdout
    assert {outcome for outcome, _ in found.values()} == {"passed"}


def test_a_listed_deviation_that_no_longer_deviates_fails_the_run(tmp_path: Path) -> None:
    """The expected failures are strict: a server fixed since its list was written is told so."""
    listed = tmp_path / "listed.deviations"
    listed.write_text("5:id-zero   said to take id 0 for a notification\n")
    with ServerThread(spec_tools()) as server:
        done, found = run_kit(tmp_path, server.url, "--rpc-deviations", str(listed))
    assert done.returncode == 1
    assert found["5:id-zero"] == ("failed", "[XPASS(strict)] said to take id 0 for a notification")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ((), "*the conformance kit needs the server's URL: --rpc-url ws://HOST:PORT/PATH*"),
        (("--rpc-url", "ws://127.0.0.1:1/", "--rpc-method", "divide=div"), "*give ROLE=NAME, ROLE one of subtract*"),
        (("--rpc-url", "ws://127.0.0.1:1/", "--rpc-slow-params", "[0.5"), "*--rpc-slow-params is not JSON*"),
        (
            ("--rpc-url", "ws://127.0.0.1:1/", "--rpc-deviations", "kit.deviations"),
            "*kit.deviations:2: the kit has no case 7:nope*",
        ),
    ],
)
def test_bad_options_are_usage_errors_that_say_what_to_write(
    pytester: pytest.Pytester, options: tuple[str, ...], message: str
) -> None:
    """The kit refuses to run on options it cannot use, before any case runs."""
    (pytester.path / "kit.deviations").write_text("# a comment\n7:nope  no such case\n")
    result = pytester.runpytest_inprocess("--pyargs", "rpc_server.conformance", *QUIET, *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_server_that_cannot_be_reached_stops_the_run_at_once(pytester: pytest.Pytester, unused_url: str) -> None:
    """One line says why, instead of a connection error for each case."""
    result = pytester.runpytest_inprocess("--pyargs", "rpc_server.conformance", *QUIET, "--rpc-url", unused_url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*cannot connect to {unused_url}: *Connection refused*"])
    result.assert_outcomes()
