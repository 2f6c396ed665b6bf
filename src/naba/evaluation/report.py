"""``naba evaluate``: metrics, figures and a self-contained HTML/Markdown report.

Writes ``metrics.json``, ``predictions.jsonl``, ``report.md`` (figures as PNG
files beside it) and ``report.html`` (figures embedded, Arabic snippets
right-to-left) into the report directory, atomically.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from naba.atomic import atomic_dir
from naba.data.readers import read_rows
from naba.data.records import Task, labels_of, load_records, unknown_labels
from naba.data.writers import dumps
from naba.decision import binarize, decide, f1_at_threshold
from naba.errors import InputError
from naba.evaluation.metrics import calibration_bins, classification_metrics
from naba.rule import HybridRule

logger = logging.getLogger(__name__)


def _detect_task(tasks: dict[str, Any], data: Path) -> Task:
    """The model's only task, else ``stance`` when the data's first row has a stance label.

    Raises:
        InputError: the data file is missing, a directory or unreadable.
    """
    if len(tasks) == 1:
        return next(iter(tasks))
    for _, row in read_rows(data):
        if isinstance(row, dict):
            return "stance" if "stance" in row else "topic"
    return "topic"


def _f1_curves(
    scores: np.ndarray, gold: np.ndarray, labels: list[str]
) -> dict[str, list[tuple[float, float]]]:
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    return {
        label: [(float(t), f1_at_threshold(scores[:, j], gold[:, j], t)) for t in grid]
        for j, label in enumerate(labels)
    }


def _figures(
    labels: list[str],
    gold: list[list[str]],
    predicted: list[list[str]],
    scores: np.ndarray,
    multi_label: bool,
    metrics: dict[str, Any],
    baseline: dict[str, Any] | None,
) -> dict[str, bytes]:
    """The report's figures as PNG bytes, by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {
        "confusion_matrix": _confusion_figure(plt, labels, gold, predicted, multi_label),
        "per_class_f1": _per_class_figure(plt, labels, metrics, baseline),
        "reliability": _reliability_figure(
            plt, labels, gold, predicted, scores, multi_label, metrics
        ),
    }
    if multi_label:
        figures["f1_vs_threshold"] = _threshold_figure(plt, labels, gold, scores, metrics)
    return figures


def _png(plt: Any, fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _confusion_figure(
    plt: Any,
    labels: list[str],
    gold: list[list[str]],
    predicted: list[list[str]],
    multi_label: bool,
) -> bytes:
    # Single-label counts gold x predicted; multi-label counts every (gold, predicted) pair.
    n = len(labels)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((n, n), dtype=int)
    for g, p in zip(gold, predicted):
        for a in g:
            for b in p:
                if a in index and b in index:
                    matrix[index[a], index[b]] += 1
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
                fontsize=8,
            )
    ax.set_title("confusion (gold x predicted pairs)" if multi_label else "confusion matrix")
    return _png(plt, fig)


def _per_class_figure(
    plt: Any, labels: list[str], metrics: dict[str, Any], baseline: dict[str, Any] | None
) -> bytes:
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * n), 3.5))
    xs = np.arange(n)
    model_f1 = [metrics["per_class"][label]["f1"] for label in labels]
    width = 0.4 if baseline else 0.7
    ax.bar(xs - (width / 2 if baseline else 0), model_f1, width, label="naba")
    if baseline:
        ax.bar(
            xs + width / 2,
            [baseline["per_class"][label]["f1"] for label in labels],
            width,
            label="TF-IDF baseline",
        )
        ax.legend()
    ax.set_xticks(xs, labels, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title("per-class F1")
    return _png(plt, fig)


def _reliability_figure(
    plt: Any,
    labels: list[str],
    gold: list[list[str]],
    predicted: list[list[str]],
    scores: np.ndarray,
    multi_label: bool,
    metrics: dict[str, Any],
) -> bytes:
    if multi_label:
        y = binarize(gold, labels)
        confidence, correct = scores.reshape(-1), (y.reshape(-1) == 1).astype(float)
    else:
        confidence = scores.max(axis=1)
        correct = np.array([g[0] == p[0] for g, p in zip(gold, predicted)], dtype=float)
    bins = calibration_bins(confidence, correct)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot([mean for _, mean, _ in bins], [accuracy for _, _, accuracy in bins], "o-")
    ax.set_xlabel("confidence")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"reliability (ECE {metrics.get('ece', 0):.3f})")
    return _png(plt, fig)


def _threshold_figure(
    plt: Any, labels: list[str], gold: list[list[str]], scores: np.ndarray, metrics: dict[str, Any]
) -> bytes:
    curves = _f1_curves(scores, binarize(gold, labels), labels)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in curves.items():
        ax.plot([t for t, _ in points], [f for _, f in points], label=label)
    for t in metrics.get("thresholds", {}).values():
        ax.axvline(t, color="grey", alpha=0.15)
    ax.set_xlabel("threshold")
    ax.set_ylabel("F1")
    ax.set_title("F1 vs threshold per label")
    ax.legend(fontsize=7, ncol=2)
    return _png(plt, fig)


def _confident_errors(
    records: list[dict[str, Any]],
    gold: list[list[str]],
    predicted: list[list[str]],
    scores: np.ndarray,
    labels: list[str],
    limit: int = 10,
) -> list[dict[str, Any]]:
    errors = []
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if sorted(g) != sorted(p):
            confidence = max(
                float(scores[i, labels.index(label)]) for label in p if label in labels
            )
            text = " ".join(str(records[i].get("text", "")).split())
            errors.append(
                {
                    "id": records[i]["id"],
                    "gold": g,
                    "predicted": p,
                    "confidence": round(confidence, 4),
                    "target": records[i].get("target"),
                    "title": records[i].get("title"),
                    "snippet": text[:240] + ("…" if len(text) > 240 else ""),
                }
            )
    errors.sort(key=lambda e: -e["confidence"])
    return errors[:limit]


def _metric_rows(
    metrics: dict[str, Any], baseline: dict[str, Any] | None, other: dict[str, Any] | None
) -> list[list[str]]:
    keys = ["macro_f1", "micro_f1", "weighted_f1", "accuracy", "macro_precision", "macro_recall"]
    keys += [k for k in ("subset_accuracy", "hamming_loss", "ece") if k in metrics]
    rows = []
    for key in keys:
        row = [key, f"{metrics[key]:.4f}"]
        if baseline:
            row.append(f"{baseline[key]:.4f}" if key in baseline else "")
        if other:
            value = other.get(key)
            row += [
                f"{value:.4f}" if isinstance(value, float) else "",
                f"{metrics[key] - value:+.4f}" if isinstance(value, float) else "",
            ]
        rows.append(row)
    return rows


def evaluate_model(
    model_dir: str | Path,
    data: str | Path,
    report_dir: str | Path,
    *,
    task: Task | None = None,
    baseline_train: str | Path | None = None,
    compare: str | Path | None = None,
    precision: str = "fp32",
    batch_size: int = 16,
    overwrite: bool = True,
    show_progress_bar: bool | None = None,
    allow_pickle: bool = False,
    unrelated: str | Path | None = None,
    device: str | None = "auto",
    runtime: str = "auto",
) -> dict[str, Any]:
    """Score a model on labelled data and write the report directory.

    Args:
        model_dir: A naba model directory.
        data: Canonical labelled JSONL (or CSV/Parquet) for one task; a file laid out like the
            model's training data (its text column) is read with the training config's columns.
        report_dir: Where ``metrics.json``, ``report.md`` and ``report.html`` go.
        task: ``topic`` or ``stance`` (default: the model's only task, else from the data).
        baseline_train: Train a TF-IDF + linear baseline on this split and score it on ``data``.
        compare: Another report directory to compare against (deltas).
        allow_pickle: Allow a model directory with pickle weights (never needed for naba's own models).
        unrelated: Stance: articles about none of the data's targets (JSONL/CSV/Parquet with a
            ``text``), each paired with one of the data's targets; the relevance section reports the
            share labelled neutral. Without it, pairs are generated from the data's own texts and
            targets (each text with a target it is not paired with in the data).
        runtime: ``torch``, ``onnx`` or ``auto`` (see :meth:`naba.infer.classifier.Classifier.load`).

    Returns:
        The metrics dict written to ``metrics.json``.

    Raises:
        InputError: unreadable data, or gold labels the model does not know (file, line and field named).
        ModelDirError: the model directory cannot be loaded.
    """
    from naba.infer.classifier import Classifier
    from naba.manifest import read_manifest

    data, report_dir = Path(data), Path(report_dir)
    # The cheap checks (manifest, data) come before loading the weights.
    manifest = read_manifest(model_dir)
    task = task or _detect_task(manifest.tasks, data)
    if task not in manifest.tasks:
        raise InputError(f"{model_dir}: has no {task} model (it has {', '.join(manifest.tasks)})")
    spec = manifest.tasks[task]
    from naba.data.columns import recorded_columns

    columns = recorded_columns(manifest.training_config, task, data)
    records = load_records(data, task, columns)
    gold = [labels_of(r, task) for r in records]
    if {label for g in gold for label in g} - set(spec.labels):
        unknown, rows, line = unknown_labels(data, task, spec.labels, columns)
        raise InputError(
            f"{data}:{line}: {'topics' if task == 'topic' else 'stance'}: labels {unknown} are not among the "
            f"model's labels {spec.labels} ({rows} {'row has' if rows == 1 else 'rows have'} them); "
            "map them or evaluate a model trained on them"
        )
    classifier = Classifier.load(
        model_dir, precision, allow_pickle=allow_pickle, device=device, runtime=runtime
    )
    # One tokenisation: the windows scored are the windows counted.
    prepared = classifier.prepare(records, tasks=[task], parts=spec.hybrid is not None)
    parts: dict[str, Any] = {}
    if spec.hybrid is not None:
        # Encoder, sparse and hybrid side by side; the hybrid's scores are the ones predict gives.
        part_scores = classifier.part_scores(prepared, task, batch_size=batch_size)
        scores = part_scores["hybrid"]
        predicted = decide(
            scores, spec.labels, spec.multi_label, spec.thresholds or None, spec.at_least_one
        )
        for part, part_probs in part_scores.items():
            limits = spec.thresholds if part == "hybrid" else spec.hybrid.part_thresholds.get(part)
            m = classification_metrics(
                gold,
                decide(
                    part_probs, spec.labels, spec.multi_label, limits or None, spec.at_least_one
                ),
                spec.labels,
                spec.multi_label,
            )
            parts[part] = {
                "macro_f1": m["macro_f1"],
                "accuracy": m["accuracy"],
                "per_class_f1": {label: v["f1"] for label, v in m["per_class"].items()},
            }
    else:
        results = classifier.classify(
            prepared, batch_size=batch_size, show_progress_bar=show_progress_bar
        )
        if task == "topic":
            predicted = [r["topics"]["labels"] for r in results]
            scores = np.array(
                [[r["topics"]["scores"][label] for label in spec.labels] for r in results]
            )
        else:
            predicted = [[r["stance"][0]["label"]] for r in results]
            scores = np.array(
                [[r["stance"][0]["scores"][label] for label in spec.labels] for r in results]
            )
    metrics = classification_metrics(gold, predicted, spec.labels, spec.multi_label, scores)
    if parts:
        metrics["parts"] = parts
        metrics["hybrid"] = spec.hybrid.summary()
    metrics.update(
        {
            "task": task,
            "model": str(model_dir),
            "data": str(data),
            "precision": precision,
            "task_precision": classifier.task_precision[task],
            "device": classifier.device,
            "multi_label": spec.multi_label,
            "labels": spec.labels,
        }
    )
    if task == "stance":
        relevance = _relevance(classifier, records, spec, unrelated, batch_size)
        if relevance is not None:
            metrics["relevance"] = relevance
    if spec.multi_label:
        metrics["thresholds"] = spec.thresholds
    else:
        metrics["prior_correction"] = spec.prior_correction
    norm = classifier.manifest.normalization
    counts = prepared.windows(task)
    metrics["windows_per_article"] = {
        "mean": round(float(np.mean(counts)), 3),
        "max": int(max(counts)),
    }
    baseline = None
    if baseline_train is not None:
        from naba.data.targets import described
        from naba.sparse import SparseModel

        # the baseline reads the targets as the model does (naba.json's target_descriptions)
        read = spec.target_descriptions if task == "stance" else None
        columns = recorded_columns(manifest.training_config, task, baseline_train)
        train_records = described(load_records(baseline_train, task, columns), read)
        model = SparseModel(task, spec.labels, spec.multi_label, norm).fit(train_records)
        baseline = classification_metrics(
            gold, model.predict(described(records, read)), spec.labels, spec.multi_label
        )
        baseline["train"] = str(baseline_train)
        metrics["baseline"] = baseline
    other = None
    if compare is not None:
        other_path = Path(compare) / "metrics.json"
        if not other_path.exists():
            raise InputError(
                f"{other_path}: not found; --compare takes a report directory written by `naba evaluate`"
            )
        other = json.loads(other_path.read_text(encoding="utf-8"))
        metrics["compared_with"] = str(compare)
    errors = _confident_errors(records, gold, predicted, scores, spec.labels)
    if spec.hybrid is not None:  # what in each article weighs for the wrong label (sparse part)
        from naba.evaluation.review_report import add_error_evidence

        add_error_evidence(errors, records, classifier.tasks[task].sparse)
    figures = _figures(spec.labels, gold, predicted, scores, spec.multi_label, metrics, baseline)
    with atomic_dir(report_dir, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(
            json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as handle:
            for record, g, p, row in zip(records, gold, predicted, scores):
                handle.write(
                    dumps(
                        {
                            "id": record["id"],
                            "gold": g,
                            "predicted": p,
                            "scores": {
                                label: round(float(s), 6) for label, s in zip(spec.labels, row)
                            },
                        }
                    )
                    + "\n"
                )
        for name, png in figures.items():
            (tmp / f"{name}.png").write_bytes(png)
        (tmp / "report.md").write_text(
            _markdown(metrics, baseline, other, errors, figures), encoding="utf-8"
        )
        (tmp / "report.html").write_text(
            _html(metrics, baseline, other, errors, figures), encoding="utf-8"
        )
    return metrics


def _relevance(
    classifier: Any,
    records: list[dict[str, Any]],
    spec: Any,
    unrelated: str | Path | None,
    batch_size: int,
) -> dict[str, Any] | None:
    """The share of unrelated (article, target) pairs labelled neutral, overall and per target."""
    import random

    from naba.data.unrelated import neutral_label, unrelated_pairs

    try:
        label = (spec.unrelated or {}).get("label") or neutral_label(spec.labels, None, "model")
    except InputError:
        logger.warning(
            "warning: relevance: the model has no neutral stance label (%s); section skipped",
            ", ".join(spec.labels),
        )
        return None
    norm = classifier.manifest.normalization
    targets = sorted({r["target"] for r in records})
    if unrelated is not None:
        from naba.infer.predict import Rejected, iter_inputs

        rng = random.Random(13)
        items = [item for item in iter_inputs([Path(unrelated)]) if not isinstance(item, Rejected)]
        pairs = [
            {"text": item["text"], "target": item.get("target") or rng.choice(targets)}
            for item in items
        ]
        source = str(unrelated)
    else:
        pairs = unrelated_pairs(records, label, norm, ratio=1.0, seed=13)
        source = "generated from the evaluated data (each text with another of its targets)"
    if not pairs:
        return None
    results = classifier.predict(pairs, tasks=["stance"], batch_size=batch_size)
    per_target: dict[str, list[int]] = {}
    for pair, result in zip(pairs, results):
        per_target.setdefault(pair["target"], []).append(int(result["stance"][0]["label"] == label))
    hits = [h for values in per_target.values() for h in values]
    return {
        "source": source,
        "neutral_label": label,
        "pairs": len(pairs),
        "neutral_share": round(float(np.mean(hits)), 4),
        "per_target": {
            t: {"pairs": len(v), "neutral_share": round(float(np.mean(v)), 4)}
            for t, v in sorted(per_target.items())
        },
    }


def _parts_lines(metrics: dict[str, Any]) -> list[str]:
    parts = metrics.get("parts")
    if not parts:
        return []
    h = metrics["hybrid"]
    lines = [
        "",
        "## Hybrid: what each part brings",
        "",
        f"Chosen on dev: {HybridRule.model_validate(h).describe()}.",
        "",
        "| | encoder | sparse n-grams | hybrid |",
        "|---|---|---|---|",
    ]
    for key, name in (("macro_f1", "macro-F1"), ("accuracy", "accuracy")):
        lines.append(
            f"| {name} | "
            + " | ".join(f"{parts[p][key]:.4f}" for p in ("encoder", "sparse", "hybrid"))
            + " |"
        )
    for label in metrics["labels"]:
        lines.append(
            f"| F1 {label} | "
            + " | ".join(
                f"{parts[p]['per_class_f1'][label]:.4f}" for p in ("encoder", "sparse", "hybrid")
            )
            + " |"
        )
    return lines


def _relevance_lines(metrics: dict[str, Any]) -> list[str]:
    rel = metrics.get("relevance")
    if not rel:
        return []
    lines = [
        "",
        "## Relevance",
        "",
        f"{rel['pairs']} pairs of an article with a target it is not about ({rel['source']}): "
        f"{100 * rel['neutral_share']:.1f}% labelled {rel['neutral_label']!r}.",
        "",
        "| target | pairs | labelled neutral |",
        "|---|---|---|",
    ]
    lines += [
        f"| {t.replace('|', '/')} | {v['pairs']} | {100 * v['neutral_share']:.1f}% |"
        for t, v in rel["per_target"].items()
    ]
    return lines


def _table_header(baseline: Any, other: Any) -> list[str]:
    return (
        ["metric", "naba"]
        + (["TF-IDF baseline"] if baseline else [])
        + (["compared", "delta"] if other else [])
    )


def _markdown(
    metrics: dict[str, Any],
    baseline: Any,
    other: Any,
    errors: list[dict[str, Any]],
    figures: dict[str, bytes],
) -> str:
    header = _table_header(baseline, other)
    lines = [
        f"# Evaluation: {metrics['task']}",
        "",
        f"Model `{metrics['model']}` on `{metrics['data']}` "
        f"({metrics['n']} examples, {metrics['precision']}; {metrics['windows_per_article']['mean']} windows per article).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _metric_rows(metrics, baseline, other)]
    lines += [
        "",
        "## Per class",
        "",
        "| label | precision | recall | F1 | support |" + (" baseline F1 |" if baseline else ""),
        "|---|---|---|---|---|" + ("---|" if baseline else ""),
    ]
    for label, m in metrics["per_class"].items():
        extra = f" {baseline['per_class'][label]['f1']:.4f} |" if baseline else ""
        lines.append(
            f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |{extra}"
        )
    if metrics.get("thresholds"):
        lines += [
            "",
            "Thresholds: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["thresholds"].items()),
        ]
    if metrics.get("prior_correction"):
        lines += [
            "",
            f"Prior correction: alpha {metrics['prior_correction']:g} (chosen on dev in training, in the model's bias)",
        ]
    lines += _parts_lines(metrics)
    lines += _relevance_lines(metrics)
    lines += ["", "## Figures", ""] + [f"![{name}]({name}.png)" for name in figures]
    lines += [
        "",
        "## Most confident errors",
        "",
        "| id | gold | predicted | confidence | text |",
        "|---|---|---|---|---|",
    ]
    for e in errors:
        snippet = e["snippet"].replace("|", "/")
        lines.append(
            f"| {e['id']} | {', '.join(e['gold'])} | {', '.join(e['predicted'])} | {e['confidence']:.3f} | {snippet} |"
        )
    return "\n".join(lines) + "\n"


def _parts_html(metrics: dict[str, Any]) -> str:
    parts = metrics.get("parts")
    if not parts:
        return ""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{name}</td>"
        + "".join(f"<td>{parts[p][key]:.4f}</td>" for p in ("encoder", "sparse", "hybrid"))
        + "</tr>"
        for key, name in (("macro_f1", "macro-F1"), ("accuracy", "accuracy"))
    )
    rows += "".join(
        f"<tr><td>F1 {esc(label)}</td>"
        + "".join(
            f"<td>{parts[p]['per_class_f1'][label]:.4f}</td>"
            for p in ("encoder", "sparse", "hybrid")
        )
        + "</tr>"
        for label in metrics["labels"]
    )
    return (
        f"<h2>Hybrid: what each part brings</h2><p>Chosen on dev: {esc(HybridRule.model_validate(metrics['hybrid']).describe())}.</p>"
        f"<table><tr><th></th><th>encoder</th><th>sparse n-grams</th><th>hybrid</th></tr>{rows}</table>"
    )


def _relevance_html(metrics: dict[str, Any]) -> str:
    rel = metrics.get("relevance")
    if not rel:
        return ""
    esc = html.escape
    rows = "".join(
        f'<tr><td class="ar" dir="rtl" lang="ar">{esc(t)}</td><td>{v["pairs"]}</td><td>{100 * v["neutral_share"]:.1f}%</td></tr>'
        for t, v in rel["per_target"].items()
    )
    return (
        f"<h2>Relevance</h2><p>{rel['pairs']} pairs of an article with a target it is not about ({esc(rel['source'])}): "
        f"{100 * rel['neutral_share']:.1f}% labelled {esc(rel['neutral_label'])}.</p>"
        f"<table><tr><th>target</th><th>pairs</th><th>labelled neutral</th></tr>{rows}</table>"
    )


def _html(
    metrics: dict[str, Any],
    baseline: Any,
    other: Any,
    errors: list[dict[str, Any]],
    figures: dict[str, bytes],
) -> str:
    esc = html.escape
    header = "".join(f"<th>{esc(h)}</th>" for h in _table_header(baseline, other))
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
        for row in _metric_rows(metrics, baseline, other)
    )
    per_class = "".join(
        f"<tr><td>{esc(label)}</td><td>{m['precision']:.4f}</td><td>{m['recall']:.4f}</td><td>{m['f1']:.4f}</td><td>{m['support']}</td>"
        + (f"<td>{baseline['per_class'][label]['f1']:.4f}</td>" if baseline else "")
        + "</tr>"
        for label, m in metrics["per_class"].items()
    )
    images = "".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{esc(name.replace('_', ' '))}</figcaption></figure>"
        for name, png in figures.items()
    )
    rows = "".join(
        f"<tr><td>{esc(e['id'])}</td><td>{esc(', '.join(e['gold']))}</td><td>{esc(', '.join(e['predicted']))}</td>"
        f'<td>{e["confidence"]:.3f}</td><td class="ar" dir="rtl" lang="ar">'
        + (f"<b>{esc(e['target'])}</b> — " if e.get("target") else "")
        + (f"<b>{esc(e['title'])}</b><br>" if e.get("title") else "")
        + e.get("evidence_html", esc(e["snippet"]))
        + "</td></tr>"
        for e in errors
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>naba evaluation: {esc(metrics["task"])}</title>
<style>
body {{ font-family: system-ui, "Noto Sans", "Noto Naskh Arabic", "DejaVu Sans", sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }}
th {{ background: #f3f3f3; }} figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 560px; }}
.ar {{ text-align: right; unicode-bidi: isolate; font-size: 1.05em; max-width: 40em; }}
mark.for {{ background: #c8f0c8; }} mark.against {{ background: #ffe0a0; }}
</style></head><body>
<h1>Evaluation: {esc(metrics["task"])}</h1>
<p>Model <code>{esc(metrics["model"])}</code> on <code>{esc(metrics["data"])}</code>: {metrics["n"]} examples, {esc(metrics["precision"])},
{metrics["windows_per_article"]["mean"]} windows per article.</p>
<table><tr>{header}</tr>{body}</table>
<h2>Per class</h2>
<table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>{"<th>baseline F1</th>" if baseline else ""}</tr>{per_class}</table>
{_parts_html(metrics)}
{_relevance_html(metrics)}
<h2>Figures</h2>{images}
<h2>Most confident errors</h2>
<table><tr><th>id</th><th>gold</th><th>predicted</th><th>confidence</th><th>text</th></tr>{rows}</table>
</body></html>
"""
