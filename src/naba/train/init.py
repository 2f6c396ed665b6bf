"""``naba init``: a training config written from the user's own data, every value with its reason.

spaCy's ``init config`` and AutoTrain write a config from a few questions or
from the data; here the data answers them. :func:`init_config` reads the
training file with the readers every command uses, names its columns
(:func:`naba.data.columns.find_columns`), reads the label set, measures the
articles in tokens of the chosen encoder, sizes windows, batches, epochs and
the evaluation interval from what it found, and writes a YAML whose every key
carries a comment saying why it has that value. The result loads with
:func:`naba.config.load_config`; ``naba train CONFIG --dry-run`` checks it
against the data without training.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naba.config import NEUTRAL_LABELS, ColumnsConfig, NabaConfig, validate_config
from naba.data.columns import FoundColumns, find_columns, label_counts
from naba.data.readers import read_rows
from naba.data.records import Task, labels_of, load_records
from naba.errors import InputError, Problem

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 500  # rows read to name the columns
LENGTH_SAMPLE = 1000  # articles tokenised to measure lengths
WINDOW_LENGTHS = (64, 128, 256)  # longer windows cost quadratically: more windows of 256 instead
MAX_WINDOWS = 4  # more windows per article make batches big enough to need checkpointing
TARGET_STEPS = 200  # optimizer steps a small data set should get, spread over its epochs
EPOCHS = (2, 8)  # the fewest and most epochs init chooses
EVAL_STEPS = 500  # evaluate this often when an epoch is longer


@dataclass(frozen=True)
class InitOptions:
    """What ``naba init`` was given.

    Attributes:
        train, dev, test: The user's files (as they will be written in the config).
        task: ``topic``, ``stance``, or None to decide from the columns.
        base: ``model.base``: an encoder directory, a hub id, or ``auto``.
        columns: Column names the user passed; ``given`` says which keys of it were passed.
        fmt: ``auto`` or the format of every file.
    """

    train: Path
    dev: Path | None = None
    test: Path | None = None
    task: Task | None = None
    base: str = "auto"
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    given: frozenset[str] = frozenset()
    fmt: str = "auto"


@dataclass
class InitResult:
    """What :func:`init_config` found and wrote; ``summary`` is what ``naba init`` prints."""

    path: Path
    config: NabaConfig
    text: str
    summary: list[str]
    target_map: tuple[Path, str] | None = None  # stance: the target map to fill in, and its text


@dataclass
class _Entry:
    value: Any
    why: str


def _sample_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _, row in read_rows(path, fmt):
        if isinstance(row, Problem):
            continue
        rows.append(row)
        if len(rows) >= SAMPLE_ROWS:
            break
    return rows


def _encoder(base: str) -> tuple[str, str, Any, int]:
    """``(resolved base, what was said about it, tokenizer, longest input)`` for ``model.base``."""
    from transformers import AutoConfig, AutoTokenizer

    from naba.encoder.auto import AUTO, resolve_base
    from naba.hub import unreachable

    resolved = resolve_base(base)
    said = f"auto found {resolved}" if base == AUTO else "given (--base)"
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=False)
        encoder_config = AutoConfig.from_pretrained(resolved, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - transformers raises many unrelated types
        raise unreachable(resolved, exc) from None
    longest = int(getattr(encoder_config, "max_position_embeddings", 512) or 512)
    # Models with absolute positions offset by 2 (RoBERTa, XLM-R) accept 2 fewer tokens.
    if getattr(encoder_config, "model_type", "") in ("roberta", "xlm-roberta"):
        longest -= 2
    return resolved, said, tokenizer, longest


def _token_lengths(records: list[dict[str, Any]], task: Task, tokenizer: Any) -> list[int]:
    """Tokens of each sampled article as the model sees it (title and text, or target and text)."""
    from naba.config import NormalizationConfig
    from naba.encoding import document_text, target_text

    norm = NormalizationConfig()
    sample = records[:: max(1, len(records) // LENGTH_SAMPLE)][:LENGTH_SAMPLE]
    if task == "topic":
        encoded = tokenizer([document_text(r, norm) for r in sample], truncation=False)
    else:
        encoded = tokenizer(
            [target_text(r["target"], norm) for r in sample],
            [document_text(r["text"], norm) for r in sample],
            truncation=False,
        )
    return sorted(len(ids) for ids in encoded["input_ids"])


def _percentile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _windows_for(tokens: int, length: int, stride: int) -> int:
    if tokens <= length:
        return 1
    return 1 + math.ceil((tokens - length) / (length - stride))


def choose_windows(lengths: list[int], longest: int) -> dict[str, _Entry]:
    """Window length, stride and count from measured article lengths (tokens, sorted).

    The shortest of :data:`WINDOW_LENGTHS` that holds the 90th-percentile
    article in one window, within what the encoder accepts; else the longest,
    with enough windows for the 99th percentile (at most :data:`MAX_WINDOWS`): only the
    articles that need more windows pay for them.
    """
    p50, p90, p99 = (_percentile(lengths, q) for q in (0.5, 0.9, 0.99))
    fits = [n for n in WINDOW_LENGTHS if n <= longest]
    length = next((n for n in fits if n >= p90), fits[-1] if fits else max(16, longest))
    stride = length // 4
    count = min(MAX_WINDOWS, _windows_for(p99, length, stride))
    measured = f"articles are {p50} tokens at the median, {p90} at the 90th percentile"
    return {
        "length": _Entry(
            length,
            f"{measured}; the encoder accepts {longest}"
            + (": one window holds 9 articles in 10" if length >= p90 else ""),
        ),
        "stride": _Entry(stride, "a quarter of the window: context shared by neighbours"),
        "max_windows": _Entry(
            count,
            f"enough for the 99th percentile ({p99} tokens); shorter articles take fewer"
            if count < MAX_WINDOWS
            else f"the cap; the 99th percentile ({p99} tokens) is cut after {count} windows",
        ),
        "pooling": _Entry("mean", "an article's logits are the mean of its windows'"),
    }


def choose_schedule(n_train: int) -> dict[str, _Entry]:
    """Batch size, epochs and evaluation interval from the number of training articles."""
    batch = 16 if n_train >= 2000 else 8
    per_epoch = math.ceil(n_train / batch)
    epochs = min(EPOCHS[1], max(EPOCHS[0], math.ceil(TARGET_STEPS / per_epoch)))
    return {
        "epochs": _Entry(
            epochs,
            f"{n_train} training articles in batches of {batch} are {per_epoch} steps an epoch; "
            f"{epochs} epochs give {epochs * per_epoch} steps (early stopping may end sooner)",
        ),
        "batch_size": _Entry(
            batch,
            "more updates for a small set" if batch == 8 else "enough articles: bigger batches",
        ),
        "learning_rate": _Entry(
            5.0e-5,
            "a common rate for fine-tuning a pretrained encoder "
            "(an encoder from `naba encoder tiny` starts from random weights: use 1e-3)",
        ),
        "head_learning_rate": _Entry(
            1.0e-3, "the new classification head starts from random weights: it learns faster"
        ),
        "eval_every": _Entry(
            "epoch" if per_epoch <= EVAL_STEPS else EVAL_STEPS,
            "score dev after every epoch: best checkpoint and early stopping"
            if per_epoch <= EVAL_STEPS
            else f"an epoch is {per_epoch} steps: score dev every {EVAL_STEPS} of them",
        ),
        "early_stopping_patience": _Entry(3, "stop after 3 evaluations without a better dev"),
        "class_weight": _Entry("sqrt", "rare labels weigh more in the loss, but not fully"),
    }


def _labels_entry(records: list[dict[str, Any]], task: Task) -> tuple[dict[str, _Entry], str]:
    rows = [labels_of(r, task) for r in records]
    counts = label_counts(rows)
    if len(counts) < 2:
        raise InputError(
            f"expected at least two {task} labels in the training data, found {sorted(counts)}; "
            "is --label-column the right column?"
        )
    labels = sorted(counts)
    listed = ", ".join(f"{label} {counts[label]}" for label in labels)
    entries = {"labels": _Entry(labels, f"the {len(labels)} labels of the training data: {listed}")}
    if task == "topic":
        several = sum(len(r) > 1 for r in rows)
        entries["multi_label"] = _Entry(
            several > 0,
            f"{several} of {len(rows)} articles carry several labels: a sigmoid per label"
            if several
            else "every article carries one label: one softmax over the labels",
        )
    return entries, listed


def dev_fraction(n_rows: int) -> float:
    """The share of train held out as dev when there is no dev file: more of a small set."""
    return 0.15 if n_rows < 1000 else 0.1


def _split_entries(options: InitOptions, n_train: int) -> dict[str, _Entry]:
    out = {"train": _Entry(str(options.train), "given (--train)")}
    if options.dev is not None:
        out["dev"] = _Entry(str(options.dev), "given (--dev): picks checkpoints and thresholds")
    else:
        fraction = dev_fraction(n_train)
        out["dev_fraction"] = _Entry(
            fraction,
            f"no --dev: {fraction:.0%} of train is held out as dev (a text never on both sides); "
            "dev picks checkpoints, thresholds and the blend",
        )
    if options.test is not None:
        out["test"] = _Entry(str(options.test), "given (--test): scored once, at the end")
    return out


def _column_entries(found: FoundColumns) -> dict[str, _Entry]:
    defaults = ColumnsConfig()
    out = {}
    for key in (
        "id_column",
        "text_column",
        "title_column",
        "target_column",
        "label_column",
        "label_separator",
    ):
        if key in found.why:
            out[key] = _Entry(getattr(found.columns, key), found.why[key])
        elif key == "id_column" and defaults.id_column not in found.header:
            out[key] = _Entry(defaults.id_column, "no id column: ids are the rows' line numbers")
    return out


def _stance_entries(labels: list[str]) -> dict[str, _Entry]:
    lowered = {label.lower() for label in labels}
    neutral = next((n for n in NEUTRAL_LABELS if n in lowered), None)
    if neutral is None:
        return {
            "unrelated": _Entry(
                False,
                f"none of the labels is a neutral one ({', '.join(NEUTRAL_LABELS)}): no unrelated "
                "pairs (set neutral_label and turn this on to teach relevance)",
            )
        }
    return {
        "unrelated": _Entry(
            True,
            f"pairs of an article with a target it is not about, labelled {neutral!r}: "
            "the model learns relevance",
        )
    }


MAP_ALL_TARGETS = 200  # up to this many targets the map lists them all; above, the id-like ones


def target_map(records: list[dict[str, Any]], config_path: Path) -> tuple[Path, str] | None:
    """Stance: a target map to fill in, listing the data's targets commented out.

    Every target is listed (identifier-like ones first) where the data has at
    most :data:`MAP_ALL_TARGETS`; above that (claims, one per article), only
    those that look like identifiers. None where there is nothing to list.
    """
    from naba.data.targets import looks_like_identifier

    counts = Counter(r["target"] for r in records)
    ids = sorted(t for t in counts if looks_like_identifier(t))
    named = set(ids)
    others = sorted(t for t in counts if t not in named) if len(counts) <= MAP_ALL_TARGETS else []
    if not ids and not others:
        return None
    lines = [
        f"# Stance target descriptions for {config_path} (tasks.stance.targets), written by",
        "# `naba init`. The model reads a target's description instead of its name: uncomment a",
        "# line and write the words to read, in the articles' language (a list of descriptions",
        "# is also allowed). A target left commented out is read as written; outputs always keep",
        "# the target as the data names it.",
    ]
    if ids:
        lines.append(
            f"# {len(ids)} of {len(counts)} targets look like identifiers: describe those."
        )
    for target in ids + others:
        note = "; looks like an identifier" if target in ids else ""
        lines.append(
            f"# {json.dumps(target, ensure_ascii=False)}:   # {counts[target]} pairs{note}"
        )
    return config_path.with_name(f"{config_path.stem}.targets.yaml"), "\n".join(lines) + "\n"


def build_config(options: InitOptions, config_path: Path) -> InitResult:
    """Read the data and the encoder, and choose every setting; nothing is written.

    Raises:
        InputError: unreadable data, a column that cannot be named, fewer than two labels.
        ModelDirError: ``model.base`` cannot be loaded (or ``auto`` finds no encoder).
    """
    found = find_columns(
        options.train,
        _sample_rows(options.train, options.fmt),
        task=options.task,
        given=options.columns,
        given_fields=options.given,
    )
    task = found.task
    records = load_records(options.train, task, found.columns, options.fmt)
    for extra in (options.dev, options.test):
        if extra is not None:
            load_records(extra, task, found.columns, options.fmt)
    label_entries, listed = _labels_entry(records, task)
    task_entries = {**_split_entries(options, len(records)), "columns": _column_entries(found)}
    task_entries.update(label_entries)
    mapped = target_map(records, config_path) if task == "stance" else None
    if task == "stance":
        task_entries.update(_stance_entries(label_entries["labels"].value))
    if mapped is not None:
        task_entries["targets"] = _Entry(
            str(mapped[0]), "what the model reads for each target: fill in this file"
        )
    if options.fmt != "auto":
        task_entries["format"] = _Entry(options.fmt, "given (--format)")
    resolved, said, tokenizer, longest = _encoder(options.base)
    lengths = _token_lengths(records, task, tokenizer)
    n_train = len(records) - (
        0 if options.dev else round(len(records) * dev_fraction(len(records)))
    )
    tree: dict[str, Any] = {
        "seed": _Entry(13, "the dev carve, batch order and the head's first weights: repeatable"),
        "output_dir": _Entry(
            f"runs/{config_path.stem}", "the model directory `naba train` writes (or --output)"
        ),
        "tasks": {task: task_entries},
        "model": {
            "base": _Entry(options.base, said),
            "window": choose_windows(lengths, longest),
            "hybrid": _Entry(
                True, "a sparse n-gram model beside the encoder, blended as dev picks"
            ),
        },
        "train": choose_schedule(n_train),
        "thresholds": {
            "tune": _Entry(True, "decision thresholds (or the prior correction) chosen on dev"),
        },
    }
    text = _header(options, found, config_path) + "".join(_emit(tree, 0))
    config = validate_config(NabaConfig, _values(tree), str(config_path))
    window = config.model.window
    summary = [
        f"read {options.train}: {len(records)} {task} articles; columns "
        + ", ".join(repr(c) for c in found.header),
        "columns: "
        + ", ".join(
            f"{k.removesuffix('_column')} {v.value!r}"
            for k, v in _column_entries(found).items()
            if k in found.why
        ),
        f"labels ({len(label_entries['labels'].value)}): {listed}",
        f"encoder: {options.base}" + (f" -> {resolved}" if resolved != options.base else ""),
        f"windows: {window.length} tokens, up to {window.max_windows} per article "
        f"(median article {_percentile(lengths, 0.5)} tokens)",
    ]
    if mapped is not None:
        summary.append(f"targets: describe them in {mapped[0]} (the model reads what you write)")
    return InitResult(
        path=config_path, config=config, text=text, summary=summary, target_map=mapped
    )


def init_config(
    config_path: str | Path, options: InitOptions, *, overwrite: bool = False
) -> InitResult:
    """Write a commented training config for the user's data (see :func:`build_config`).

    Args:
        config_path: The YAML to write.
        options: The data files, task, encoder and column names given.
        overwrite: Replace an existing file.

    Returns:
        What was written, with the lines ``naba init`` prints.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is not set.
        InputError, ModelDirError: see :func:`build_config`.

    Example:
        >>> init_config("news.yaml", InitOptions(train=Path("train.csv")))  # doctest: +SKIP
    """
    path = Path(config_path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; pass --overwrite to replace it")
    result = build_config(options, path)
    files = [(path, result.text)]
    if result.target_map is not None and not result.target_map[0].exists():
        files.append(result.target_map)  # a map the user has filled in is kept
    for target, text in files:
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return result


def _header(options: InitOptions, found: FoundColumns, path: Path) -> str:
    return (
        f"# Written by `naba init` from {options.train}: "
        f"a {found.task} model ({found.why['task']}).\n"
        "# Every value says why it was chosen; edit any of them. Check the config and the data\n"
        f"# without training: naba train {path} --dry-run\n"
    )


def _scalar(value: Any) -> str:
    """A YAML scalar: JSON's form (valid YAML flow) with floats PyYAML reads as floats."""
    if isinstance(value, float) and "e" in repr(value):
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return json.dumps(value, ensure_ascii=False)


def _emit(tree: dict[str, Any], depth: int) -> list[str]:
    lines, indent = [], "  " * depth
    for key, node in tree.items():
        if isinstance(node, _Entry):
            lines.append(f"{indent}{key}: {_scalar(node.value)}  # {node.why}\n")
        else:
            lines.append(f"{indent}{key}:\n")
            lines.extend(_emit(node, depth + 1))
    return lines


def _values(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, _Entry) else _values(v) for k, v in tree.items()}
