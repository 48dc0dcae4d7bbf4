"""The benchmarks' command line, which needs none of the benchmark extras to parse its flags."""

from __future__ import annotations

import pytest

from benchmarks import cli


@pytest.mark.parametrize(
    ("rounds", "said"), [("abc", "must be a whole number, not 'abc'"), ("0", "must be at least 1, not 0")]
)
def test_rounds_that_are_not_a_whole_number_from_1_are_refused_in_words(
    rounds: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rounds is checked as the server's own count flags are: a sentence, not 'invalid _positive value'."""
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["--rounds", rounds])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"python -m benchmarks: error: argument --rounds: {said}\n")
