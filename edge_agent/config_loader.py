"""Load the YAML config once: line numbers for errors, env and secret-file overrides, then strict validation.

Overrides: ``EDGE_AGENT__MQTT__HOST=broker`` sets ``mqtt.host``; list items take their index
(``EDGE_AGENT__PIPELINES__0__MODEL__VARIANT``). A name ending in ``_FILE`` that is not itself a
field reads the value from that file (``EDGE_AGENT__MQTT__PASSWORD_FILE=/run/secrets/mqtt``), the
Docker and balena convention for secrets. Values from files never appear in errors or logs.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.config import AgentConfig
from edge_agent.errors import ConfigError, ConfigIssue

ENV_PREFIX = "EDGE_AGENT__"
Loc = tuple[str | int, ...]


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Parse, override and validate; raise ConfigError listing every problem with its line and a hint."""
    filename = str(path)
    data, lines = read_yaml(path)
    origins: dict[Loc, str] = {}
    issues = apply_env_overrides(data, os.environ if environ is None else environ, origins)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        issues += [_issue(err, data, lines, origins) for err in exc.errors()]
        raise ConfigError(filename, issues) from None
    if issues:
        raise ConfigError(filename, issues)
    resolved: AgentConfig = _resolve_paths(config, path.parent.resolve())
    return resolved


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[Loc, int]]:
    if not path.is_file():
        raise ConfigError(str(path), [ConfigIssue("", "file not found", hint="pass the path of a YAML config")])
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            str(path), [ConfigIssue("", f"not valid YAML: {problem}", line, "check indentation and quoting")]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [ConfigIssue("", "the top level must be a mapping of sections", 1)])
    lines: dict[Loc, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return data, lines


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*loc, str(key_node.value))
            _record_lines(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*loc, index), lines)


# ---------------------------------------------------------------- environment overrides


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str], origins: dict[Loc, str]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        loc: Loc = tuple(int(p) if p.isdigit() else p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        value: Any = _parse_env_value(environ[name])
        last = loc[-1]
        if isinstance(last, str) and last.endswith("_file") and not _is_field(loc, data):
            loc = (*loc[:-1], last[: -len("_file")])
            try:
                value = Path(environ[name]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                issues.append(ConfigIssue(_dotted(loc), f"cannot read the secret file named by {name}: {exc.strerror}"))
                continue
        try:
            _set_path(data, loc, value)
        except (KeyError, IndexError, TypeError):
            issues.append(ConfigIssue(_dotted(loc), f"{name} names no place in the config", hint="check the path"))
            continue
        origins[loc] = f"env {name}"
    return issues


def _parse_env_value(raw: str) -> Any:
    """Strings stay strings (pydantic coerces numbers and booleans); JSON-style lists and maps are parsed."""
    if raw[:1] in "[{":
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
    return raw


def _set_path(data: Any, loc: Loc, value: Any) -> None:
    target = data
    for part in loc[:-1]:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target[part]
    target[loc[-1]] = value


# ---------------------------------------------------------------- schema walking


def _is_field(loc: Loc, data: Any) -> bool:
    model = _model_at(loc[:-1], data)
    return model is not None and loc[-1] in model.model_fields


def _model_at(loc: Loc, data: Any = None) -> type[BaseModel] | None:
    """The config model class found at `loc`, following lists, optionals and tagged unions (by `kind` in data)."""
    current: Any = AgentConfig
    for part in loc:
        current = _unwrap(current, _kind(data))
        data = _child(data, part)
        if current is None:
            return None
        if isinstance(part, str) and isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
    current = _unwrap(current, _kind(data))
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _kind(data: Any) -> str | None:
    return data.get("kind") if isinstance(data, dict) else None


def _child(data: Any, part: str | int) -> Any:
    if isinstance(data, dict):
        return data.get(part)
    if isinstance(data, list) and isinstance(part, int) and part < len(data):
        return data[part]
    return None


def _unwrap(tp: Any, tag: str | int | None) -> Any:
    """Strip Annotated/Optional; for a union of models pick the member whose `kind` equals `tag`."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0], tag)
        for member in members:
            kind = getattr(member, "model_fields", {}).get("kind")
            if kind is not None and tag in typing.get_args(kind.annotation):
                return member
        return None
    return tp


# ---------------------------------------------------------------- error translation


def _issue(err: ErrorDetails, data: Any, lines: dict[Loc, int], origins: dict[Loc, str]) -> ConfigIssue:
    loc = _data_loc(err["loc"], data)
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    origin = next((origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origins), None)
    message = err["msg"].removeprefix("Value error, ")
    if origin:
        message = f"{message} (set by {origin})"
    return ConfigIssue(_dotted(loc), message, None if origin else line, _hint(err, loc, data))


def _data_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Drop the tagged-union discriminator parts pydantic inserts, keeping the keys that exist in the YAML."""
    out: list[str | int] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        if in_dict or (isinstance(current, list) and isinstance(part, int) and part < len(current)):
            current = current[part]
            out.append(part)
        elif isinstance(current, dict) and isinstance(part, str) and current.get("kind") == part:
            continue
        else:
            out.append(part)
            current = None
    return tuple(out)


_HINTS = {
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "union_tag_invalid": "use one of the values listed",
    "union_tag_not_found": "add kind: with one of the values listed",
    "literal_error": "use one of the values listed",
    **dict.fromkeys(
        ("int_parsing", "float_parsing", "int_type", "float_type", "int_from_float"),
        "write a plain number without quotes or units",
    ),
}


def _hint(err: ErrorDetails, loc: Loc, data: Any) -> str | None:
    kind = err["type"]
    if kind not in ("extra_forbidden", "missing"):
        return _HINTS.get(kind)
    model = _model_at(loc[:-1], data)
    if kind == "missing":
        field = model.model_fields.get(str(loc[-1])) if model else None
        about = f" ({field.description})" if field is not None and field.description else ""
        return f"add {loc[-1]}:{about}"
    allowed = sorted(model.model_fields) if model else []
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"remove it; allowed keys here: {', '.join(allowed)}" if allowed else "remove it"


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _resolve_paths(model: BaseModel, base: Path) -> Any:
    """Relative paths in the config are relative to the config file's folder, wherever the agent starts."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            setattr(model, name, base / value)
        elif isinstance(value, BaseModel):
            _resolve_paths(value, base)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    _resolve_paths(item, base)
    return model
