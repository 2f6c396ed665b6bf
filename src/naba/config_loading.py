"""Reading and validating YAML configs: ``--set`` overrides, one-line errors per problem.

The schemas (:mod:`naba.config`, :mod:`naba.pretrain_config`) derive from
:class:`Section`, which forbids unknown keys, so a misspelt key fails at load
time with the file and the dotted key named, instead of being silently ignored.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A configuration file or override is invalid. The message is one line per problem."""


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["train.learning_rate=3e-5", ...]`` into a nested dict.

    Values are parsed as YAML scalars, so ``3e-5`` becomes a float and
    ``true`` a bool; pydantic then checks the type against the schema.

    Raises:
        ConfigError: an override is not ``key=value``.
    """
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. "
                "train.learning_rate=3e-5"
            )
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is set both as a value and as a section")
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys at ``loc`` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line per problem: ``SOURCE: dotted.key: message``."""
    lines = []
    for item in error.errors():
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-after"))
        )
        key = ".".join(str(p) for p in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _field_names(model, loc), n=1)
            message = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{item['msg']} (found {item.get('input')!r})"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping; every failure is a one-line :class:`ConfigError` naming
    the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, found {type(raw).__name__}"
        )
    return raw


Model = TypeVar("Model", bound=BaseModel)


def load_yaml_config(
    model: type[Model], path: str | Path, overrides: list[str] | tuple[str, ...]
) -> Model:
    """Read a YAML config, apply ``--set`` overrides and validate it: both config loaders, one
    way."""
    path = Path(path)
    return validate_config(model, _read_yaml_mapping(path), str(path), overrides)


def validate_config(
    model: type[Model],
    data: dict[str, Any],
    source: str,
    overrides: list[str] | tuple[str, ...] = (),
) -> Model:
    """Apply ``--set`` overrides to a config mapping and validate it; errors name ``source`` and the
    key.

    Raises:
        ConfigError: an unknown key or a value of the wrong type.
    """
    data = _merge(data, parse_overrides(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(
                exc, source + (" (with --set overrides)" if overrides else ""), model
            )
        ) from None
