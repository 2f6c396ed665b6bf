"""Unrelated stance pairs: an article with a target it was not written about, labelled neutral.

Training adds them so that a stance model learns relevance (an article about an
IMF delegation has no stance toward electric cars); evaluation uses them to
measure it (the share of such pairs labelled neutral).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from naba.config import NEUTRAL_LABELS, NormalizationConfig
from naba.errors import InputError
from naba.text import normalize


def neutral_label(labels: Sequence[str], configured: str | None, source: Any) -> str:
    """The stance label meaning "no stance": the configured one, else the first conventional name
    among ``labels``.

    Raises:
        InputError: the configured label is not a label of the data, or none is configured and none
            is recognised.
    """
    if configured is not None:
        if configured not in labels:
            raise InputError(
                f"{source}: tasks.stance.neutral_label: {configured!r} is not a stance label of "
                f"the data ({', '.join(labels)}); set it to one of them"
            )
        return configured
    lowered = {label.lower(): label for label in labels}
    for name in NEUTRAL_LABELS:
        if name in lowered:
            return lowered[name]
    raise InputError(
        f"{source}: tasks.stance.unrelated: none of the stance labels ({', '.join(labels)}) is a "
        f"neutral label ({', '.join(NEUTRAL_LABELS)}); set tasks.stance.neutral_label to the label "
        "meaning 'no stance toward the target', or tasks.stance.unrelated=false"
    )


def text_key(text: str, normalization: NormalizationConfig) -> str:
    """A text's identity for pairing: normalised, whitespace collapsed."""
    return " ".join(normalize(text, normalization).split())


def targets_by_text(
    records: Iterable[dict[str, Any]], normalization: NormalizationConfig
) -> dict[str, set[str]]:
    """Every target each text (by :func:`text_key`) is paired with in ``records``."""
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(text_key(r["text"], normalization), set()).add(r["target"])
    return out


def unrelated_pairs(
    records: Sequence[dict[str, Any]],
    label: str,
    normalization: NormalizationConfig,
    *,
    ratio: float = 1.0,
    seed: str | int = 0,
    extra_texts: Sequence[str] = (),
    exclude: set[str] | frozenset[str] = frozenset(),
    written_about: dict[str, set[str]] | None = None,
    targets: Sequence[str] | None = None,
    id_prefix: str = "unrelated",
) -> list[dict[str, Any]]:
    """Up to ``ratio x len(records)`` distinct (text, other target) stance records labelled
    ``label``.

    Texts are the records' own and ``extra_texts`` (taken in a seeded shuffled
    round), minus those whose key is in ``exclude``; each is paired with a
    target drawn from ``targets`` (default: the records' targets) that the text
    is never paired with in ``written_about`` (default: in ``records``).
    """
    written_about = (
        written_about if written_about is not None else targets_by_text(records, normalization)
    )
    pool: dict[str, str] = {}
    for text in [*(r["text"] for r in records), *extra_texts]:
        key = text_key(text, normalization)
        if key not in exclude:
            pool.setdefault(key, text)
    choices = sorted(set(targets) if targets is not None else {r["target"] for r in records})
    n = round(ratio * len(records))
    rng = random.Random(str(seed))
    keys = list(pool)
    rng.shuffle(keys)
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for _ in range(4):  # rounds over the texts; one suffices when texts outnumber the pairs wanted
        for key in keys:
            if len(out) >= n:
                return out
            candidates = [
                t for t in choices if t not in written_about.get(key, ()) and (key, t) not in seen
            ]
            if candidates:
                target = rng.choice(candidates)
                seen.add((key, target))
                out.append(
                    {
                        "id": f"{id_prefix}-{len(out)}",
                        "text": pool[key],
                        "target": target,
                        "stance": label,
                        "unrelated": True,
                    }
                )
    return out
