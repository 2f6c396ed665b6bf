"""Stance target descriptions: the words the model reads for a target named by an id.

Stance data often names its targets by identifiers or in another language
(``women_driving``, ``Vision2030``). An Arabic encoder reads such an id as a
few vocabulary fragments, and the sparse part's relevance overlap (how much of
the target's words the text uses) can never find an English id in an Arabic
text. ``tasks.stance.targets`` maps each target, as the data names it, to one
or more descriptions; every model input (encoder, sparse part, relevance
detector, the unrelated pairs and the dev choices built from them) reads the
description, while every output keeps the target as the user named it.

A target with several descriptions reads as all of them joined by
:data:`SEPARATOR`: one input per target, so prediction costs the same, and the
relevance overlap finds any of its phrasings. A target with no description
(free text at prediction, a claim in the data) is read as written.

The map is saved with the model (``naba.json``'s stance entry,
``target_descriptions``, and the stance encoder's ``config.json``), so
inference never needs the training config.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from naba.config_loading import ConfigError

SEPARATOR = " ، "  # between the descriptions of one target (an Arabic comma)
# An identifier-like target: Latin letters, digits, "_", "-" or "." (one letter at least), no space.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\-]*[A-Za-z][A-Za-z0-9_.\-]*")
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")
_LETTER = re.compile(r"[^\W\d_]")

TargetDescriptions = dict[str, list[str]]


def _clean(target: str, value: Any, source: str) -> list[str]:
    """One target's descriptions as non-empty strings, or a :class:`ConfigError` naming it."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(
            f"{source}: {target}: expected a description or a list of descriptions, "
            f"found {type(value).__name__}"
        )
    cleaned = [" ".join(v.split()) for v in values]
    if not cleaned or not all(cleaned):
        raise ConfigError(
            f"{source}: {target}: empty description; write the words the model should read "
            "for this target, or remove it from the map"
        )
    return cleaned


def load_target_descriptions(
    spec: Mapping[str, Any] | str | Path | None, source: str = "tasks.stance.targets"
) -> TargetDescriptions:
    """A config's target map: inline (``{id: description or [descriptions]}``) or a YAML file.

    Args:
        spec: ``tasks.stance.targets``: a mapping, a path to a YAML mapping, or None.
        source: Where the spec came from, for error messages.

    Returns:
        ``{target: [description, ...]}`` with whitespace collapsed; empty for None.

    Raises:
        ConfigError: an unreadable file, a value that is not text, or an empty description;
            the message names the file (or ``source``) and the target.
    """
    if spec is None:
        return {}
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{source}: {path}: cannot read the target map ({type(exc).__name__})"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
        if raw is None:  # nothing filled in yet (the map naba init writes, all commented out)
            return {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{path}: expected a mapping of target -> description, found {type(raw).__name__}"
            )
        spec, source = raw, str(path)
    return {str(target): _clean(str(target), value, source) for target, value in spec.items()}


def check_known(descriptions: Mapping[str, Any], targets: Iterable[str], source: str) -> None:
    """Every described target is a target of the data: a described id the data lacks is a typo.

    Raises:
        ConfigError: names the first unknown id, the closest target of the data and ``source``.
    """
    known = set(targets)
    for target in descriptions:
        if target not in known:
            hint = difflib.get_close_matches(target, sorted(known), n=1)
            raise ConfigError(
                f"tasks.stance.targets: {target!r} is not a target of {source}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + "; the map's keys are the targets as the data names them"
            )


def read_target(target: str, descriptions: Mapping[str, Sequence[str]] | None) -> str:
    """What the model reads for ``target``: its descriptions joined, or the target as written."""
    if descriptions and target in descriptions:
        return SEPARATOR.join(descriptions[target])
    return target


def described(
    records: Sequence[dict[str, Any]], descriptions: Mapping[str, Sequence[str]] | None
) -> list[dict[str, Any]]:
    """Stance records as the model reads them: described targets replaced (copies)."""
    if not descriptions:
        return list(records)
    return [
        {**r, "target": read_target(r["target"], descriptions)}
        if r["target"] in descriptions
        else r
        for r in records
    ]


def parse_target_option(value: str) -> tuple[str, str | None]:
    """A ``--target`` value: ``ID=DESCRIPTION`` (a new id and what to read) or a target as is.

    Returns:
        ``(target, description)``; ``description`` is None for a plain target (an id, free text).

    Raises:
        ConfigError: a value with ``=`` and an empty id or description.
    """
    if "=" not in value:
        return value, None
    target, _, description = value.partition("=")
    target, description = target.strip(), " ".join(description.split())
    if not target or not description:
        raise ConfigError(
            f"--target {value!r}: expected ID=DESCRIPTION with a non-empty id and description "
            "(e.g. women_driving=قيادة المرأة للسيارة), or a target without '='"
        )
    return target, description


def parse_target_options(values: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``--target`` values as targets (as the output names them) and this call's new descriptions.

    Raises:
        ConfigError: a malformed ``ID=DESCRIPTION`` (see :func:`parse_target_option`).
    """
    targets: list[str] = []
    descriptions: dict[str, str] = {}
    for value in values:
        target, description = parse_target_option(value)
        targets.append(target)
        if description is not None:
            descriptions[target] = description
    return targets, descriptions


def looks_like_identifier(target: str) -> bool:
    """Whether a target looks like an identifier (Latin letters, digits, ``_``, no spaces)."""
    return bool(_IDENTIFIER.fullmatch(target.strip()))


def mostly_arabic(texts: Iterable[str]) -> bool:
    """Whether most letters of ``texts`` are Arabic."""
    arabic = letters = 0
    for text in texts:
        letters += len(_LETTER.findall(text))
        arabic += len(_ARABIC.findall(text))
    return letters > 0 and arabic * 2 > letters
