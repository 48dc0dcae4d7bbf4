"""The kit's judgement, with no socket: strict JSON, exact comparison, the latitude the specification gives."""

from __future__ import annotations

import re

import pytest

from rpc_server.conformance.cases import CASES, METHODS, SILENCE, Answer, Answers, error, result
from rpc_server.conformance.judge import Deviation, difference, matches, parse


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b'{"jsonrpc": "2.0", "result": 19, "id": 1}', "binary frame"),
        ('{"jsonrpc": "2.0", "result": NaN, "id": 1}', "NaN is not JSON"),
        ('{"jsonrpc": "2.0", "result": Infinity, "id": 1}', "Infinity is not JSON"),
        ('{"jsonrpc": "2.0", "result": 19, "id": 1, "id": 2}', 'repeats the member\\(s\\) "id"'),
        ('{"jsonrpc": "2.0", "result": 19', "not JSON"),
        ('{"jsonrpc": "2.0"} {"id": 1}', "not JSON"),
    ],
)
def test_an_answer_that_is_not_one_json_text_is_a_deviation(frame: str | bytes, why: str) -> None:
    """Binary frames, JavaScript's NaN and Infinity, repeated members and trailing text are refused."""
    with pytest.raises(Deviation, match=why):
        parse(frame)


def test_big_integers_are_read_exactly() -> None:
    """An id of 2**64 + 1 is read as that integer, so a rounded echo can be told apart."""
    assert parse('{"id": 18446744073709551617}')["id"] == 2**64 + 1


@pytest.mark.parametrize(
    ("expected", "actual", "why"),
    [
        (result(19, 1), result(19, True), "id is a Boolean (true), not a Number (1)"),
        (result(19, 1), result(19, "1"), 'id is a String ("1"), not a Number (1)'),
        (result(19, 2**53 + 1), result(19, 2**53), "id is 9007199254740992, not 9007199254740993"),
        (result(19, None), result(19, 0), "id is a Number (0), not null (null)"),
        (result(19, 1), {**result(19, 1), "extra": 1}, 'has "extra", which it must not'),
        (result(19, 1), {"result": 19, "id": 1}, 'lacks "jsonrpc"'),
        (result(19, 1), {**result(19, 1), "jsonrpc": "2"}, 'jsonrpc is "2", not "2.0"'),
        (error(-32601, 1), {**error(-32601, 1), "result": None}, 'has "result", which it must not'),
        (error(-32601, 1), {**error(-32601, 1), "error": {"code": -32601.5, "message": "Method not found"}}, "code"),
        (error(-32601, 1), {**error(-32601, 1), "error": {"code": -32601, "message": "method not found"}}, "message"),
        (
            error(-32601, 1),
            {**error(-32601, 1), "error": {"code": -32601, "message": "Method not found", "name": "x"}},
            'error has "name"',
        ),
        (result(["hello", 5], 1), result(["hello", 5, 6], 1), "result has 3 member"),
        (error(-32600), [error(-32600)], "an Array"),
    ],
)
def test_answers_are_compared_as_json_types_and_values_exactly(expected: object, actual: object, why: str) -> None:
    """true is not 1, "1" is not 1, digits are not lost, and no member may be missing or added."""
    found = difference(expected, actual)
    assert found is not None and why in found


def test_numbers_compare_by_value_and_error_data_is_free() -> None:
    """19.0 is the JSON number 19; an error's data, whatever it holds, is the server's affair."""
    assert difference(result(19, 1), result(19.0, 1.0)) is None
    with_data = {**error(-32601, "5"), "error": {"code": -32601, "message": "Method not found", "data": {"a": [1]}}}
    assert difference(error(-32601, "5"), with_data) is None


def test_a_batch_answer_is_a_set_of_responses_in_any_order() -> None:
    """Section 6: the same Response objects in any order match; one missing, added or repeated does not."""
    expected = [result(7, "1"), result(19, "2"), error(-32600)]
    assert difference(expected, [error(-32600), result(19, "2"), result(7, "1")]) is None
    assert "lacks" in str(difference(expected, [result(7, "1"), result(19, "2")]))
    assert "which it must not" in str(difference(expected, [*expected, result(19, "2")]))
    assert difference([error(-32600)] * 2, [error(-32600), result(1, None)]) is not None


def test_any_of_the_accepted_answers_matches() -> None:
    """An invalid request with a readable id may be answered with that id or with null."""
    accepted = (error(-32600), error(-32600, 1))
    assert matches(accepted, error(-32600, 1)) and matches(accepted, error(-32600))
    assert not matches(accepted, error(-32600, 2))


def test_every_case_has_a_unique_id_naming_its_section_and_a_known_expectation() -> None:
    """Ids are SECTION:name (sections 4 to 7), unique; each case calls only known methods."""
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    for case in CASES:
        assert re.fullmatch(r"(4|4\.1|4\.2|5|5\.1|6|7):[\w.^+-]+", case.id), case.id
        assert set(case.needs) <= set(METHODS)
        assert case.expect is SILENCE or isinstance(case.expect, Answer | Answers) or not case.send


def test_section_7_is_sent_as_the_specification_writes_it() -> None:
    """The examples keep the specification's spacing and line breaks; methods are renamed only where quoted."""
    batch = next(case for case in CASES if case.id == "7:batch")
    assert '{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},' in batch.send[0]
    renamed = batch.frames({"sum": "total", "subtract": "minus", "get_data": "get_data", "slow": "sleep"})[0]
    assert '"method": "total"' in renamed and '"method": "minus"' in renamed
    assert '"method": "notify_hello"' in renamed and '"method": "foo.get"' in renamed
    notify_sum = next(case for case in CASES if case.id == "7:batch-all-notifications")
    assert '"notify_sum"' in notify_sum.frames({"sum": "total"})[0]
