"""Training data for one task: splits, label set, encoded windows, fingerprints."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from naba.config import NabaConfig, TaskDataConfig, validate_config
from naba.data.records import Task, all_labels, labels_of, load_records, unknown_labels
from naba.data.unrelated import neutral_label, targets_by_text, text_key, unrelated_pairs
from naba.errors import InputError
from naba.text import dedup_key

logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    task: Task
    labels: list[str]
    multi_label: bool
    splits: dict[str, list[dict[str, Any]]]
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_targets: list[str] = field(default_factory=list)
    # Stance with tasks.stance.unrelated: the neutral label, the ratio, and the
    # generated pairs per split (train's are also in splits["train"]).
    unrelated: dict[str, Any] | None = None
    unrelated_pairs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Stance: tasks.stance.targets ({target: [descriptions]}); the splits hold what the model reads
    # (naba.data.targets.described); default_targets and the manifest the targets as named.
    target_descriptions: dict[str, list[str]] = field(default_factory=dict)


def fingerprint(records: list[dict[str, Any]]) -> dict[str, Any]:
    """SHA-256 over the canonical JSON of the records, and the row count."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        digest.update(b"\n")
    return {"sha256": digest.hexdigest(), "rows": len(records)}


def _rows(n: int) -> str:
    return f"{n} row has them" if n == 1 else f"{n} rows have them"


def _carve_dev(
    records: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Dev carved out of train, a text never in both: records sharing a text (by :func:`dedup_key`)
    move together.

    The groups are shuffled with the seed; where no text repeats, this is the
    split a shuffle of the rows gives (the same permutation and cut).
    """
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(dedup_key(record["text"]), []).append(i)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    n_dev = max(1, int(round(len(records) * fraction)))
    dev_ids: set[int] = set()
    for group in order:
        if len(dev_ids) >= n_dev:
            break
        dev_ids.update(group)
    return (
        [r for i, r in enumerate(records) if i not in dev_ids],
        [r for i, r in enumerate(records) if i in dev_ids],
    )


def _without_duplicates(
    records: list[dict[str, Any]], task: Task, path: Any, log: Any
) -> tuple[list[dict[str, Any]], int]:
    """Drop repeated texts (topic) or (target, text) pairs (stance) after normalisation, keeping the
    first, as
    ``naba data validate`` flags them and ``naba data split`` drops them; say how many went, and
    where."""
    from naba.data.split import deduplicate

    kept, report = deduplicate(records, task)
    removed = report["exact_duplicates_removed"] + report["normalised_duplicates_removed"]
    if removed:
        what = "texts" if task == "topic" else "(target, text) pairs"
        first = report["removed"][0]
        log.warning(
            "warning: %s: %d duplicate %s removed, the first of each kept "
            "(e.g. id %s repeats %s)%s",
            path,
            removed,
            what,
            first["id"],
            first["duplicate_of"],
            f"; {len(report['label_conflicts'])} with different labels"
            if report["label_conflicts"]
            else "",
        )
    return kept, removed


def load_task_data(config: NabaConfig, task: Task) -> TaskData:
    """Read and check one task's splits.

    Raises:
        InputError: unreadable files, malformed rows (file, line and field
            named), dev/test labels unknown to the training label set, or a
            single label in the training data.
    """
    task_cfg: TaskDataConfig = getattr(config.tasks, task)
    splits = {"train": load_records(task_cfg.train, task, task_cfg.columns, task_cfg.format)}
    for name in ("dev", "test"):
        path = getattr(task_cfg, name)
        if path is not None:
            splits[name] = load_records(path, task, task_cfg.columns, task_cfg.format)
    fingerprints = {
        name: fingerprint(records) for name, records in splits.items()
    }  # the files as given
    duplicates = {}
    for name in list(splits):
        splits[name], duplicates[name] = _without_duplicates(
            splits[name], task, getattr(task_cfg, name) or task_cfg.train, logger
        )
    if "dev" not in splits:
        splits["train"], splits["dev"] = _carve_dev(
            splits["train"], task_cfg.dev_fraction, config.seed
        )
    labels = list(task_cfg.labels) if task_cfg.labels else all_labels(splits["train"], task)
    if len(labels) < 2:
        raise InputError(
            f"{task_cfg.train}: expected at least two {task} labels in the training data, "
            f"found {labels}"
        )
    _check_known_labels(splits, labels, task, task_cfg)
    if task == "topic":
        setting = task_cfg.multi_label
        multi = (
            any(len(r["topics"]) > 1 for r in splits["train"])
            if setting == "auto"
            else setting in (True, "true")
        )
    else:
        multi = False
    targets: list[str] = []
    if task == "stance":
        counts: dict[str, int] = {}
        for r in splits["train"]:
            counts[r["target"]] = counts.get(r["target"], 0) + 1
        # Short named targets seen often enough are the model's default targets.
        targets = sorted(t for t, n in counts.items() if n >= 10 and len(t.split()) <= 5)
    descriptions = _target_descriptions(config, splits) if task == "stance" else {}
    fingerprints = {
        **fingerprints,
        **{
            name: fingerprint(records)
            for name, records in splits.items()
            if name not in fingerprints
        },
    }
    for name, removed in duplicates.items():
        fingerprints[name]["duplicates_removed"] = removed
    return TaskData(
        task=task,
        labels=labels,
        multi_label=multi,
        splits=splits,
        fingerprints=fingerprints,
        default_targets=targets,
        target_descriptions=descriptions,
    )


def _check_known_labels(
    splits: dict[str, list[dict[str, Any]]], labels: list[str], task: Task, task_cfg: TaskDataConfig
) -> None:
    """Every split's labels must be in the training label set: the first row that has another
    one is named (file, line)."""
    known = set(labels)
    for name, records in splits.items():
        if {lab for r in records for lab in labels_of(r, task)} - known:
            path = getattr(task_cfg, name) or task_cfg.train
            unknown, rows, line = unknown_labels(
                path, task, known, task_cfg.columns, task_cfg.format
            )
            raise InputError(
                f"{path}:{line}: {'topics' if task == 'topic' else 'stance'}: "
                f"labels {unknown} are not in the "
                f"training label set {labels} ({_rows(rows)}); "
                f"fix the data or list them in tasks.{task}.labels"
            )


def _target_descriptions(
    config: NabaConfig, splits: dict[str, list[dict[str, Any]]]
) -> dict[str, list[str]]:
    """Read tasks.stance.targets, check its ids against the data, put the descriptions in the
    splits.

    Raises:
        ConfigError: an unreadable map, an empty description, or an id no split has.
    """
    from naba.data.stats import identifier_targets
    from naba.data.targets import check_known, described, load_target_descriptions

    cfg = config.tasks.stance
    descriptions = load_target_descriptions(cfg.targets)
    check_known(descriptions, {r["target"] for rs in splits.values() for r in rs}, cfg.train)
    bare = [t for t in identifier_targets(splits["train"]) if t not in descriptions]
    if bare:
        logger.warning(
            "warning: %s: %d targets look like identifiers and have no description (%s); the model "
            "reads them as written: describe them in tasks.stance.targets",
            cfg.train,
            len(bare),
            ", ".join(bare[:5]) + (", ..." if len(bare) > 5 else ""),
        )
    for name in splits:
        splits[name] = described(splits[name], descriptions)
    return descriptions


def add_unrelated_pairs(
    stance: TaskData, config: NabaConfig, topic: TaskData | None = None
) -> None:
    """Teach relevance: pair articles with targets they were not written about, labelled neutral.

    For each split, ``unrelated_ratio x len(split)`` pairs are drawn from that
    split's own texts (the stance texts, and the topic articles of the same
    split when the model also trains topics) and that split's own targets; a
    text is never paired with a target it appears with anywhere in the data.
    A text that is in any dev or test split (stance or topic) is never used in
    a generated training pair, so nothing generated leaks across splits. The
    train pairs are appended to ``splits["train"]``; dev and test pairs are kept
    apart in ``unrelated_pairs`` to measure relevance.

    Raises:
        InputError: the stance labels have no neutral label (see
            :func:`naba.data.unrelated.neutral_label`).
    """
    cfg = config.tasks.stance
    if cfg is None or not cfg.unrelated:
        return
    label = neutral_label(stance.labels, cfg.neutral_label, cfg.train)
    norm = config.normalization
    written_about = targets_by_text(
        [r for records in stance.splits.values() for r in records], norm
    )
    held_out = {
        text_key(r["text"], norm)
        for source in (stance, topic)
        if source is not None
        for name in ("dev", "test")
        for r in source.splits.get(name, [])
    }
    counts: dict[str, int] = {}
    for split in ("train", "dev", "test"):
        real = stance.splits.get(split)
        if not real:
            continue
        extra = [r["text"] for r in topic.splits.get(split, [])] if topic is not None else []
        pairs = unrelated_pairs(
            real,
            label,
            norm,
            ratio=cfg.unrelated_ratio,
            seed=f"{config.seed}:unrelated:{split}",
            extra_texts=extra,
            exclude=held_out if split == "train" else set(),
            written_about=written_about,
            id_prefix=f"unrelated-{split}",
        )
        counts[split] = len(pairs)
        if split == "train":
            stance.splits["train"] = [*real, *pairs]
        else:
            stance.unrelated_pairs[split] = pairs
    stance.unrelated = {
        "label": label,
        "ratio": cfg.unrelated_ratio,
        "pairs": counts,
        "sources": ["stance"] + (["topic"] if topic is not None else []),
    }


def recorded_config(
    manifest: Any,
    splits: dict[str, dict[str, str]] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> NabaConfig:
    """The training config a model directory records in ``naba.json``, as its encoder was trained.

    Stance keeps the unrelated-pair settings the encoder was trained with.
    ``splits`` replaces data files per task (``{"stance": {"dev": PATH}}``);
    ``overrides`` are ``--set KEY=VALUE`` strings applied last.

    Raises:
        ConfigError: an override names an unknown key or has the wrong type.
    """
    raw = dict(manifest.training_config)
    # Models trained before train.num_workers was removed record it (it configured nothing).
    raw["train"] = {k: v for k, v in (raw.get("train") or {}).items() if k != "num_workers"}
    raw["tasks"] = {name: dict(raw.get("tasks", {}).get(name) or {}) for name in manifest.tasks}
    for name, spec in manifest.tasks.items():
        if name == "stance":
            raw["tasks"][name]["unrelated"] = (
                spec.unrelated is not None
            )  # as the encoder was trained
            if spec.unrelated:
                raw["tasks"][name]["unrelated_ratio"] = spec.unrelated["ratio"]
                raw["tasks"][name]["neutral_label"] = spec.unrelated["label"]
            # the map the model was trained with, not a file the config named then
            raw["tasks"][name]["targets"] = getattr(spec, "target_descriptions", None) or None
        raw["tasks"][name].update((splits or {}).get(name, {}))
    return validate_config(NabaConfig, raw, "naba.json's training config", overrides)
