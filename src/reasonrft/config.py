"""Stage configs: dataclasses filled from YAML plus ``key=value`` overrides, checked up front.

Each stage declares its config once, as a dataclass whose fields carry the defaults and whose
``__post_init__`` validates values (raising ``ValueError``). ``load_config`` reads an optional
YAML file, applies overrides (values parsed as YAML: ``lr=1e-5``, ``splits=[test-id]``,
``rewards.format=0.5`` for a key of a dict field), rejects unknown keys and values of the
wrong type, and turns every problem into one ``UserError`` line naming the file or key,
before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from reasonrft.errors import UserError

C = TypeVar("C")


def load_config(cls: type[C], path: str | None = None, overrides: list[str] | None = None, **defaults: Any) -> C:
    """Build ``cls`` from ``defaults``, then the YAML file at ``path``, then ``overrides``."""
    values: dict[str, Any] = dict(defaults)
    if path:
        values.update(_read_yaml(path, cls))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r}: expected key=value")
        value = _parse_value(raw, item)
        if "." in key:
            head, sub = key.split(".", 1)
            _check_key(cls, head, f"override {item!r}")
            merged = dict(values.get(head) or _field_default(cls, head) or {})
            merged[sub] = value
            values[head] = merged
        else:
            values[key] = value
    return build(cls, values, source=path or "overrides")


def build(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        _check_key(cls, key, source)
        values[key] = _coerce(value, hints[key], f"{source}: key {key!r}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"{source}: missing required key(s) {', '.join(missing)} for {_name(cls)}")
    try:
        return cls(**values)
    except ValueError as e:
        raise UserError(f"{source}: {e}") from None


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _name(cls: type) -> str:
    return getattr(cls, "stage", cls.__name__)


def _read_yaml(path: str, cls: type) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{p}: broken YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def _parse_value(raw: str, item: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"override {item!r}: value is not valid YAML") from None


def _field_default(cls: type, name: str) -> Any:
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _check_key(cls: type, key: str, source: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    if key not in names:
        import difflib

        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{source}: unknown config key {key!r} for {_name(cls)}{hint}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint; ints are accepted for floats, numbers for str."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UserError as e:
                errors.append(e)
        raise errors[0]
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}: expected a string, got {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        key_t, val_t = args if args else (Any, Any)
        return {_coerce(k, key_t, where): _coerce(v, val_t, where) for k, v in value.items()}
    return value
