"""Loading and checking scenario files (the format is specified in docs/conformance.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

__all__ = [
    "RUNNER_OPS",
    "Scenario",
    "ScenarioFileError",
    "load_option_sets",
    "load_scenarios",
    "parse_scenarios",
]

#: Steps the runner carries out itself; every other op is sent to the driver.
RUNNER_OPS = frozenset({"redis", "sleep"})

_STEP_KEYS = frozenset(
    {"op", "args", "loader", "expect", "async", "callers", "step", "command", "ms", "doc"}
)
_EXPECT_KEYS = frozenset(
    {
        "value",
        "error",
        "loader_calls",
        "all",
        "between",
        "result",
        "contains",
        "fields",
    }
)


class ScenarioFileError(ValueError):
    """A scenario file is malformed; the message names the file, scenario and step."""


@dataclass(frozen=True, slots=True)
class Scenario:
    pattern: str
    name: str
    doc: str
    steps: tuple[Mapping[str, Any], ...]
    #: Option values the scenario needs (e.g. negative caching on); a target whose
    #: options differ skips it with that reason rather than failing.
    requires: Mapping[str, Any]


def _check_step(where: str, step: object) -> Mapping[str, Any]:
    if not isinstance(step, dict) or not isinstance(step.get("op"), str):
        raise ScenarioFileError(f"{where}: a step must be an object with a string 'op'")
    unknown = set(step) - _STEP_KEYS
    if unknown:
        raise ScenarioFileError(f"{where}: unknown step keys {sorted(unknown)}")
    expect = step.get("expect", {})
    if not isinstance(expect, dict) or set(expect) - _EXPECT_KEYS:
        raise ScenarioFileError(
            f"{where}: 'expect' takes only {sorted(_EXPECT_KEYS)}, got {expect!r}"
        )
    if step["op"] == "concurrent":
        _check_step(f"{where} (inner step)", step.get("step"))
        if not isinstance(step.get("callers"), int) or step["callers"] < 1:
            raise ScenarioFileError(f"{where}: 'concurrent' needs callers >= 1")
    if step["op"] == "redis" and not (
        isinstance(step.get("command"), list) and all(isinstance(a, str) for a in step["command"])
    ):
        raise ScenarioFileError(f"{where}: 'redis' needs a command: a list of strings")
    return step


def parse_scenarios(pattern: str, text: str, source: str) -> list[Scenario]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioFileError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise ScenarioFileError(f"{source}: expected an object with a 'scenarios' list")
    out: list[Scenario] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["scenarios"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ScenarioFileError(f"{source}: scenario #{i} needs a string 'name'")
        name = raw["name"]
        if name in seen:
            raise ScenarioFileError(f"{source}: scenario name {name!r} is used twice")
        seen.add(name)
        steps = raw.get("steps")
        if not isinstance(steps, list) or not steps:
            raise ScenarioFileError(f"{source}: scenario {name!r} needs a non-empty 'steps'")
        checked = tuple(
            _check_step(f"{source}: scenario {name!r} step {j}", s) for j, s in enumerate(steps)
        )
        out.append(
            Scenario(
                pattern=pattern,
                name=name,
                doc=str(raw.get("doc", "")),
                steps=checked,
                requires=dict(raw.get("requires", {})),
            )
        )
    return out


def scenario_file(pattern: str, root: Traversable | None = None) -> Traversable:
    return (root or files("templategen.templates")).joinpath(pattern, "scenarios.json")


def load_scenarios(pattern: str, root: Traversable | None = None) -> list[Scenario]:
    """The scenarios of ``pattern`` (kebab-case name) under the templates ``root``.

    [] when it has none yet.
    """
    path = scenario_file(pattern, root)
    if not path.is_file():
        return []
    return parse_scenarios(pattern, path.read_text(encoding="utf-8"), f"{pattern}/scenarios.json")


def load_option_sets(pattern: str) -> dict[str, dict[str, Any]]:
    """Named non-default option sets the suite also runs (``"option_sets"`` in the file).

    Each is a partial mapping of option values laid over the defaults; the usual one,
    ``non_default``, is hostile on purpose: quotes, a backslash, non-ASCII and template
    syntax in strings, other names, other TTLs, another serializer.
    """
    path = scenario_file(pattern)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    sets = data.get("option_sets", {})
    if not isinstance(sets, dict) or not all(isinstance(v, dict) for v in sets.values()):
        raise ScenarioFileError(f"{pattern}/scenarios.json: option_sets must map names to objects")
    return {str(k): dict(v) for k, v in sets.items()}
