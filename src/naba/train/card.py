"""The model card (``README.md``) written into every model directory."""

from __future__ import annotations

from naba.manifest import Manifest, TaskManifest


def _row(name: str, split: str, metrics: dict) -> str:
    return (
        f"| {name} | {split} | {metrics.get('n', '')} | {metrics['macro_f1']:.4f} | "
        f"{metrics['micro_f1']:.4f} | "
        f"{metrics['accuracy']:.4f} |"
    )


def metadata_header(manifest: Manifest, tasks: list[str]) -> list[str]:
    """The Hugging Face model-card metadata block (YAML front matter) for ``tasks`` of the model."""
    import json

    config_tasks = (
        manifest.training_config.get("tasks", {})
        if isinstance(manifest.training_config, dict)
        else {}
    )
    datasets = sorted(
        {
            str(config_tasks[t][split])
            for t in tasks
            if isinstance(config_tasks.get(t), dict)
            for split in ("train", "dev", "test")
            if config_tasks[t].get(split)
        }
    )
    results = []
    for name in tasks:
        test = manifest.tasks[name].metrics.get("test")
        if isinstance(test, dict):
            results.append(
                {
                    "task": {"type": "text-classification", "name": f"{name} classification"},
                    "dataset": {"name": f"{name} test split", "type": "local"},
                    "metrics": [
                        {"type": "f1", "name": "macro-F1", "value": round(test["macro_f1"], 4)},
                        {
                            "type": "accuracy",
                            "name": "accuracy",
                            "value": round(test["accuracy"], 4),
                        },
                    ],
                }
            )
    lines = [
        "---",
        "language:",
        "- ar",
        "license: other",
        "license_name: the licences of the base model and of the training data",
        f"base_model: {json.dumps(manifest.base_model)}",
        "pipeline_tag: text-classification",
        "library_name: transformers",
        "tags:",
        "- naba",
        "- arabic",
        "- news",
        *[f"- {t}" for t in tasks],
    ]
    if datasets:
        lines += ["datasets:", *[f"- {json.dumps(d, ensure_ascii=False)}" for d in datasets]]
    lines += ["metrics:", "- f1", "- accuracy"]
    if results:
        lines += [
            "model-index:",
            "- name: naba " + "-".join(tasks),
            f"  results: {json.dumps(results, ensure_ascii=False)}",
        ]
    return lines + ["---", ""]


def _origin(manifest: Manifest) -> str:
    """``fine-tuned from `BASE``` or, for a student, ``distilled from `TEACHER` (a fine-tune of
    `BASE`)``."""
    if manifest.distilled_from:
        return (
            f"distilled from `{manifest.distilled_from['teacher']}` "
            f"(a fine-tune of `{manifest.base_model}`)"
        )
    return f"fine-tuned from `{manifest.base_model}`"


def _distillation(manifest: Manifest) -> list[str]:
    """The card's distillation section: the teacher, the layers kept, the loss, and teacher vs
    student on test."""
    record = manifest.distilled_from
    if not record:
        return []
    lines = [
        "## Distillation",
        "",
        f"A student of `{record['teacher']}` (created {record['teacher_created']}), "
        "trained by `naba distill` to match "
        f"the teacher's article logits at temperature {record['temperature']:g} "
        f"(weight {record['alpha']:g}; the gold "
        f"labels weigh {1 - record['alpha']:g}), starting from the teacher's own weights.",
        "",
    ]
    for name, done in record.get("tasks", {}).items():
        teacher, student = (
            done.get("teacher_metrics", {}).get("test"),
            manifest.tasks[name].metrics.get("test"),
        )
        compared = (
            f"; test macro-F1 teacher {teacher['macro_f1']:.4f}, student {student['macro_f1']:.4f}"
            if teacher and student
            else ""
        )
        unlabeled = (
            f" and {done['unlabeled_articles']} unlabeled articles"
            if done.get("unlabeled_articles")
            else ""
        )
        lines.append(
            f"- **{name}**: {len(done['layers'])} of the teacher's {done['teacher_layers']} layers "
            f"({', '.join(map(str, done['layers']))}); "
            f"{done['train_articles']} training articles{unlabeled}"
            f"{compared}"
        )
    return lines + [""]


def task_card(manifest: Manifest, name: str) -> str:
    """The card in one task's HF directory: what it is alone, and how to reproduce naba's
    decision with transformers."""
    task = manifest.tasks[name]
    lines = metadata_header(manifest, [name]) + [
        f"# naba {name} model (the encoder part)",
        "",
        f"{_origin(manifest)[0].upper()}{_origin(manifest)[1:]} by naba {manifest.naba_version}; "
        f"labels: {', '.join(task.labels)}. "
        "The whole model, with its manifest, is the parent directory (`naba.json`, `README.md`).",
        "",
        "## With plain transformers",
        "",
        "```python",
        "from transformers import pipeline",
        f'clf = pipeline("text-classification", model="{name}", top_k=None)',
        "```",
        "",
        "gives the encoder's scores. naba's decision, copied into `config.json` under "
        "`naba_decision`, differs where:",
    ]
    if task.multi_label:
        lines.append(
            "- labels are multi-label: every label whose sigmoid score reaches its threshold "
            f"({', '.join(f'{k} {v:.3f}' for k, v in task.thresholds.items())})"
            + ("; the best label when none does" if task.at_least_one else "")
        )
    if task.prior_correction:
        lines.append(
            f"- the prior correction (alpha {task.prior_correction:g}) is already in these "
            "weights' bias: nothing to do"
        )
    if task.hybrid and task.hybrid.reads_sparse:
        h = task.hybrid
        lines.append(
            f"- naba decides with {h.describe()}, the sparse part in `{h.path}/` "
            "(formula in `config.json`): "
            "use naba (`naba predict`, `Classifier`) for its labels"
        )
    if name == "stance":
        lines.append(
            "- inputs are (target, text) pairs: the target first, as the tokenizer's first segment"
        )
    lines += [
        "",
        "Normalise text as naba does first (settings in `naba.json`): "
        f"{manifest.normalization.model_dump()}.",
        "",
    ]
    return "\n".join(lines)


def model_card(manifest: Manifest) -> str:
    """Markdown: what the model does, how it was trained, its metrics and its limits."""
    lines = metadata_header(manifest, list(manifest.tasks)) + [
        "# naba model",
        "",
        f"Arabic news classification {_origin(manifest)} with naba {manifest.naba_version} "
        f"on {manifest.created}.",
        "",
        *_distillation(manifest),
        "## Tasks",
        "",
    ]
    for name, task in manifest.tasks.items():
        lines += _task_lines(name, task)
    lines += [
        "",
        "## Metrics",
        "",
        "| task | split | n | macro-F1 | micro-F1 | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for name, task in manifest.tasks.items():
        for split in ("dev", "test"):
            if split in task.metrics:
                lines.append(_row(name, split, task.metrics[split]))
    return "\n".join(lines + _preparation_and_use(manifest))


def _task_lines(name: str, task: TaskManifest) -> list[str]:
    """The card's bullet for one task: its kind, labels and the choices made on dev."""
    kind = (
        "multi-label (sigmoid, per-label thresholds)"
        if task.multi_label
        else "single-label (softmax)"
    )
    lines = [f"- **{name}**: {kind}; labels: {', '.join(task.labels)}"]
    if task.thresholds:
        lines.append(
            "  - thresholds (tuned on dev): "
            + ", ".join(f"{k} {v:.3f}" for k, v in task.thresholds.items())
        )
    if task.prior_correction:
        lines.append(
            f"  - prior correction (chosen on dev): alpha {task.prior_correction:g}, "
            "the log class weights of the loss taken back out of the decision; "
            "already in the classifier's bias"
        )
    if task.hybrid:
        lines += _hybrid_lines(task)
    if task.default_targets:
        lines.append(
            "  - stance targets trained on (scored only when asked: `--all-targets`, "
            "`all_targets=True`): " + "، ".join(task.default_targets)
        )
    if task.target_descriptions:
        lines.append(
            "  - targets named by ids are read as their descriptions (`target_descriptions`; "
            "a plain `transformers` user feeds the description as the first segment): "
            + "; ".join(f"{t}: {' ، '.join(d)}" for t, d in task.target_descriptions.items())
        )
    if name == "stance":
        lines.append(
            "  - stance is scored only toward the targets a caller names (`--target`, "
            "a target column, `targets=[...]`); an article with no target gets no stance"
        )
    if task.unrelated:
        lines += _relevance_lines(task)
    if "int8" in task.precision_agreement:
        agreement = task.precision_agreement["int8"]
        runs = "int8" if agreement >= 0.99 else "fp32 (int8 changed too many labels)"
        lines.append(
            f"  - int8 agreed with fp32 on {100 * agreement:.1f}% of dev labels: "
            f"under `--precision int8` or `auto` this task runs in {runs}"
        )
    return lines


def _hybrid_lines(task: TaskManifest) -> list[str]:
    """The hybrid a task decides with, its parts' test scores, and what plain ``transformers``
    gets instead."""
    h, parts = task.hybrid, task.metrics.get("parts", {})
    return [
        f"  - hybrid: naba decides with {h.describe()}, chosen on dev among the encoder, "
        f"a sparse TF-IDF n-gram model (`{task.path}/{h.path}/`) and their blends"
        + (
            "; test macro-F1 encoder {:.4f}, sparse {:.4f}, hybrid {:.4f}".format(
                *(parts[p]["test"]["macro_f1"] for p in ("encoder", "sparse", "hybrid"))
            )
            if all("test" in parts.get(p, {}) for p in ("encoder", "sparse", "hybrid"))
            else ""
        ),
        f'  - plain `transformers` (`pipeline("text-classification", "{task.path}")`) '
        "loads the encoder alone: its labels are the encoder part's, not naba's hybrid decision",
    ]


def _relevance_lines(task: TaskManifest) -> list[str]:
    """The unrelated (article, target) pairs a stance task was trained with, and the share of
    them labelled as unrelated per split."""
    u = task.unrelated
    lines = [
        f"  - relevance: trained with {u['pairs'].get('train', 0)} unrelated pairs "
        f"(an article with a target it is not about, from {' and '.join(u['sources'])} texts) "
        f"labelled {u['label']!r}, {u['ratio']:g} per real pair"
    ]
    for split, rel in task.metrics.get("relevance", {}).items():
        lines.append(
            f"    - {split}: {100 * rel['neutral_share']:.1f}% of {rel['pairs']} unrelated pairs "
            f"labelled {u['label']!r}"
        )
    return lines


def _preparation_and_use(manifest: Manifest) -> list[str]:
    """The card's closing sections: how text is prepared, intended use, how to reproduce."""
    window = manifest.window
    return [
        "",
        "## How text is prepared",
        "",
        f"Arabic normalisation: {manifest.normalization.model_dump()}.",
        f"Articles (title + body) are split into windows of {window.length} tokens with "
        f"{window.stride} tokens of overlap (at most {window.max_windows}); window logits are "
        f"{window.pooling}-pooled per article.",
        "",
        "## Intended use",
        "",
        "Routing, tagging and monitoring of Arabic news articles in the topics and stance targets "
        "above, with a person reviewing decisions that matter. Not for judging individuals, and "
        "not for text far from the training data (other dialects, social-media slang, other "
        "domains) without evaluating it there first with `naba evaluate`.",
        "",
        "## Reproduce",
        "",
        "The resolved training config is in `config.yaml`; data fingerprints (SHA-256 and row "
        "counts) are in `naba.json`.",
        "",
    ]
