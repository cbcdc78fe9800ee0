"""The runner's ``fields`` expectation: an object holds the named fields, null = absent."""

from __future__ import annotations

from typing import Any

import pytest

from templategen.suite.runner import StepFailed, _check
from templategen.suite.scenarios import ScenarioFileError, parse_scenarios

RESPONSE = {
    "status": 304,
    "headers": {"etag": '"v7"', "vary": "Accept-Encoding", "date": "Sun, 06 Nov 1994"},
    "body": "",
}


def check(fields: dict[str, Any], value: Any = RESPONSE) -> None:
    _check("step 0 (request)", {"fields": fields}, {"ok": True, "value": value})


def test_named_fields_match_and_unnamed_ones_are_not_checked() -> None:
    check({"status": 304, "headers": {"etag": '"v7"'}})
    check({})


def test_a_field_with_another_value_fails_naming_its_path() -> None:
    with pytest.raises(StepFailed, match=r"value\.headers\.etag = 'W/\"v7\"', got '\"v7\"'"):
        check({"headers": {"etag": 'W/"v7"'}})


def test_values_compare_as_json_so_true_is_not_1() -> None:
    with pytest.raises(StepFailed, match=r"value\.flag"):
        check({"flag": 1}, {"flag": True})


def test_null_means_the_field_is_absent() -> None:
    check({"headers": {"content-type": None}})
    with pytest.raises(StepFailed, match=r"value\.headers\.etag to be absent"):
        check({"headers": {"etag": None}})


def test_a_missing_field_or_a_value_that_is_not_an_object_fails() -> None:
    with pytest.raises(StepFailed, match=r"value\.headers\.age = '0', but it is absent"):
        check({"headers": {"age": "0"}})
    with pytest.raises(StepFailed, match=r"expected an object at value\.body"):
        check({"body": {"text": ""}})
    with pytest.raises(StepFailed, match="expected an object at value"):
        check({"status": 200}, [200])


def test_scenario_files_accept_fields_in_expect() -> None:
    text = '{"scenarios": [{"name": "n", "steps": [{"op": "x", "expect": {"fields": {}}}]}]}'
    assert parse_scenarios("p", text, "t.json")[0].steps[0]["expect"] == {"fields": {}}
    with pytest.raises(ScenarioFileError, match="'expect' takes only"):
        parse_scenarios("p", text.replace('"fields"', '"field"'), "t.json")


# Every expectation key the scenario format accepts is one the runner can fail on: an
# accepted key that is never checked would let a scenario pass without checking anything.
FAILING = {
    "value": ({"value": 1}, {"ok": True, "value": 2}),
    "result": ({"result": "OK"}, {"ok": True, "value": "NO"}),
    "error": ({"error": "configuration"}, {"ok": True, "value": None}),
    "loader_calls": ({"loader_calls": 1}, {"ok": True, "value": None, "loader_calls": 2}),
    "all": ({"all": 1}, {"ok": True, "value": [1, 2]}),
    "between": ({"between": [1, 5]}, {"ok": True, "value": 6}),
    "contains": ({"contains": ["a"]}, {"ok": True, "value": ["b"]}),
    "fields": ({"fields": {"a": 1}}, {"ok": True, "value": {"a": 2}}),
}


def test_every_accepted_expectation_key_can_fail() -> None:
    from templategen.suite.scenarios import _EXPECT_KEYS

    assert set(FAILING) == set(_EXPECT_KEYS)
    for key, (expect, response) in FAILING.items():
        with pytest.raises(StepFailed):
            _check(f"step ({key})", expect, response)
