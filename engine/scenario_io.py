"""Reading and writing scenario files (JSON or YAML), with errors that name the bad value's path."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.scenario import Scenario

_MESSAGES = {
    "date_parsing": "not a date (expected YYYY-MM-DD)",
    "date_from_datetime_parsing": "not a date (expected YYYY-MM-DD)",
    "date_from_datetime_inexact": "not a date (expected YYYY-MM-DD)",
    "date_type": "not a date (expected YYYY-MM-DD)",
    "decimal_parsing": "not a decimal number",
    "decimal_type": "not a decimal number",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "string_type": "not a string",
    "bool_type": "not true or false",
    "bool_parsing": "not true or false",
    "list_type": "not a list",
    "model_type": "not an object",
    "dict_type": "not an object",
    "string_too_short": "must not be empty",
}


class ScenarioError(ValueError):
    """A scenario that cannot be read. `problems` are `path: message` strings."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        listed = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{source}: invalid scenario\n  {listed}{more}")


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_errors(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        message = _MESSAGES.get(item["type"])
        if message is None:
            message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{_path(loc)}: {message}")
    return problems


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, format_errors(exc)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file. JSON numbers are read as decimals; YAML is accepted too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), [f"cannot be read: {exc}"]) from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ScenarioError(str(path), [f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError(str(path), ["(top level): not an object"])
    return parse_scenario(data, str(path))


def dump_scenario(scenario: Scenario) -> str:
    return scenario.model_dump_json(indent=1, exclude_defaults=False)
