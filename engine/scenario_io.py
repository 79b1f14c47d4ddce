"""Reading and writing scenario files (JSON or YAML), with errors that name the bad value's path.

A file is read defensively: only a regular file (a FIFO would hang, `/dev/zero` never ends), at most
`MAX_BYTES`; JSON numbers become `Decimal` (NaN/Infinity too, so the model names them), nesting is
capped at `MAX_DEPTH`; YAML is read with a safe loader whose numbers are plain decimals (YAML 1.1's
`1_000`, `0x1F` and `1:20` stay text, which the model refuses) and whose aliases may not expand to
more than `MAX_YAML_NODES` nodes (an alias bomb is refused while it is parsed).
"""

from __future__ import annotations

import json
import os
import re
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.scenario import FILE_CONTEXT, Scenario

MAX_BYTES = 128 * 1024 * 1024  # ASSUMED enough for a month-end export (the bench's is far smaller)
MAX_DEPTH = 32  # the format is 6 levels deep
MAX_YAML_NODES = 2_000_000  # nodes after expanding aliases
_LONG_INT = 40  # longer integer literals become Decimal (the model says "too many digits")

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
    "string_pattern_mismatch": "contains a control character (escape, NUL, C0/C1) or a bidi override",
    "string_unicode": "not valid text (a lone surrogate)",
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
        if item["type"] == "dangling_reference":  # one line per reference, each with its own path
            problems += str(item["msg"]).split("\n")
            continue
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        message = _MESSAGES.get(item["type"])
        if item["type"] == "string_too_long":
            message = f"too long (at most {item.get('ctx', {}).get('max_length')} characters)"
        if message is None:
            message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{_path(loc)}: {message}")
    return problems


def _too_deep(data: Any) -> str | None:
    """The path (shortened) at which `data` nests deeper than MAX_DEPTH, else None. Iterative."""
    stack: list[tuple[Any, int, tuple[int | str, ...]]] = [(data, 0, ())]
    while stack:
        node, depth, loc = stack.pop()
        if depth > MAX_DEPTH:
            shown = _path(loc[:8]) + ("…" if len(loc) > 8 else "")
            return shown
        if isinstance(node, dict):
            stack.extend((v, depth + 1, (*loc, str(k)[:40])) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, depth + 1, (*loc, i)) for i, v in enumerate(node))
    return None


def parse_scenario(data: Any, source: str = "scenario", *, references: bool = True) -> Scenario:
    """Validate parsed data as a scenario file: every rule of the file format, and (unless
    `references` is False: the rule tests' partial worlds) every reference resolved."""
    where = _too_deep(data)
    if where is not None:
        raise ScenarioError(source, [f"{where}: nested more than {MAX_DEPTH} levels deep"])
    try:
        return Scenario.model_validate(data, context={**FILE_CONTEXT, "references": references})
    except ValidationError as exc:
        raise ScenarioError(source, format_errors(exc)) from None
    except RecursionError:
        raise ScenarioError(source, [f"(top level): nested more than {MAX_DEPTH} levels deep"]) from None


# --- reading files -------------------------------------------------------------------------------


def read_limited(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Raises `ScenarioError` otherwise.
    Opened non-blocking and checked on the open descriptor, so a FIFO cannot hang the read."""
    limit = MAX_BYTES if limit is None else limit
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ScenarioError(str(path), ["file not found"]) from None
    except IsADirectoryError:
        raise ScenarioError(str(path), ["not a regular file (a directory)"]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(info.st_mode)
                else "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "a socket"
                if stat.S_ISSOCK(info.st_mode)
                else "not a file"
            )
            raise ScenarioError(str(path), [f"not a regular file ({kind})"])
        if info.st_size > limit:
            raise ScenarioError(str(path), [f"too large ({info.st_size:,} bytes; at most {limit:,})"])
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:  # grew while being read
                raise ScenarioError(str(path), [f"too large (more than {limit:,} bytes)"])
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    finally:
        os.close(fd)


def _json_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= _LONG_INT else Decimal(text)


def loads_json(text: str) -> Any:
    """JSON with non-integer numbers (and NaN/Infinity, and over-long integers) as `Decimal`."""
    return json.loads(text, parse_float=Decimal, parse_int=_json_int, parse_constant=Decimal)


# YAML: a safe loader whose implicit numbers are plain decimals only.
_INT, _FLOAT, _DECIMAL = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:trueup,2024:decimal"


class _YamlTooBig(yaml.YAMLError):
    pass


class ScenarioYamlLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` with YAML 1.1's int/float forms (`1_000`, `0x1F`, `1:20`, `.inf`) left as
    text or made decimals, and the size after alias expansion counted while composing."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        node = super().compose_node(parent, index)
        if id(node) in self._sizes:  # an alias: the anchored node, already counted
            return node
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
        if size > MAX_YAML_NODES:
            raise _YamlTooBig(f"aliases expand to more than {MAX_YAML_NODES:,} values (an alias bomb?)")
        self._sizes[id(node)] = size
        return node

    def construct_yaml_int(self, node: Any) -> int | Decimal:  # type: ignore[override]  # YAML ints that are not plain ints become Decimal (SafeConstructor says int)
        text = self.construct_scalar(node)
        return _json_int(text.lstrip("+"))

    def construct_decimal(self, node: Any) -> Decimal:
        text = self.construct_scalar(node).lower()
        if text.lstrip("+-") in (".inf", ".nan"):
            return Decimal(text.replace(".inf", "Infinity").replace(".nan", "NaN"))
        return Decimal(text)


ScenarioYamlLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$", re.ASCII), list("-+0123456789"))
ScenarioYamlLoader.add_implicit_resolver(
    _DECIMAL,
    re.compile(
        r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?$"
        r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$",
        re.ASCII,
    ),
    list("-+.0123456789"),
)
ScenarioYamlLoader.add_constructor(_INT, ScenarioYamlLoader.construct_yaml_int)
ScenarioYamlLoader.add_constructor(_DECIMAL, ScenarioYamlLoader.construct_decimal)
ScenarioYamlLoader.add_constructor(_FLOAT, ScenarioYamlLoader.construct_decimal)  # an explicit !!float


def loads_yaml(text: str) -> Any:
    return yaml.load(text, Loader=ScenarioYamlLoader)  # noqa: S506 - a SafeLoader subclass


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file. JSON numbers are read as decimals; YAML is accepted too."""
    path = Path(path)
    raw = read_limited(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), [f"cannot be read: not UTF-8 text (byte {exc.start})"]) from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = loads_yaml(text)
        else:
            data = loads_json(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            str(path), [f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"]
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [f"not valid YAML: {exc}"]) from None
    except RecursionError:
        raise ScenarioError(str(path), [f"(top level): nested more than {MAX_DEPTH} levels deep"]) from None
    except (ValueError, ArithmeticError) as exc:  # a literal no number type can hold
        raise ScenarioError(str(path), [f"not a valid number: {str(exc)[:200]}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError(str(path), ["(top level): not an object"])
    return parse_scenario(data, str(path))


def dump_scenario(scenario: Scenario) -> str:
    return scenario.model_dump_json(indent=1, exclude_defaults=False)
