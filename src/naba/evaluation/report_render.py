"""The evaluation report rendered: ``report.md`` (figures as PNG files beside it) and a
self-contained ``report.html`` (figures embedded, Arabic right-to-left), from ``metrics.json``'s
content."""

from __future__ import annotations

import base64
import html
from typing import Any

from naba.rule import HybridRule

# The HTML report's style sheet: Arabic snippets right-to-left, evidence marked by the label it
# weighs for.
_STYLE = (
    'body { font-family: system-ui, "Noto Sans", "Noto Naskh Arabic", "DejaVu Sans", sans-serif; '
    "margin: 2em; color: #222; }\n"
    "table { border-collapse: collapse; margin: 1em 0; } "
    "td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }\n"
    "th { background: #f3f3f3; } figure { display: inline-block; margin: 0.5em; } "
    "img { max-width: 560px; }\n"
    ".ar { text-align: right; unicode-bidi: isolate; font-size: 1.05em; max-width: 40em; }\n"
    "mark.for { background: #c8f0c8; } mark.against { background: #ffe0a0; }\n"
)


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


def report_markdown(
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
        f"({metrics['n']} examples, {metrics['precision']}; "
        f"{metrics['windows_per_article']['mean']} windows per article).",
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
            f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} "
            f"| {m['support']} |{extra}"
        )
    if metrics.get("thresholds"):
        lines += [
            "",
            "Thresholds: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["thresholds"].items()),
        ]
    if metrics.get("prior_correction"):
        lines += [
            "",
            f"Prior correction: alpha {metrics['prior_correction']:g} (chosen on dev in training, "
            "in the model's bias)",
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
            f"| {e['id']} | {', '.join(e['gold'])} | {', '.join(e['predicted'])} | "
            f"{e['confidence']:.3f} | {snippet} |"
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
        "<h2>Hybrid: what each part brings</h2><p>Chosen on dev: "
        f"{esc(HybridRule.model_validate(metrics['hybrid']).describe())}.</p>"
        "<table><tr><th></th><th>encoder</th><th>sparse n-grams</th><th>hybrid</th></tr>"
        f"{rows}</table>"
    )


def _relevance_html(metrics: dict[str, Any]) -> str:
    rel = metrics.get("relevance")
    if not rel:
        return ""
    esc = html.escape
    rows = "".join(
        f'<tr><td class="ar" dir="rtl" lang="ar">{esc(t)}</td><td>{v["pairs"]}</td>'
        f"<td>{100 * v['neutral_share']:.1f}%</td></tr>"
        for t, v in rel["per_target"].items()
    )
    return (
        f"<h2>Relevance</h2><p>{rel['pairs']} pairs of an article with a target it is not about "
        f"({esc(rel['source'])}): "
        f"{100 * rel['neutral_share']:.1f}% labelled {esc(rel['neutral_label'])}.</p>"
        f"<table><tr><th>target</th><th>pairs</th><th>labelled neutral</th></tr>{rows}</table>"
    )


def report_html(
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
        f"<tr><td>{esc(label)}</td><td>{m['precision']:.4f}</td><td>{m['recall']:.4f}</td>"
        f"<td>{m['f1']:.4f}</td><td>{m['support']}</td>"
        + (f"<td>{baseline['per_class'][label]['f1']:.4f}</td>" if baseline else "")
        + "</tr>"
        for label, m in metrics["per_class"].items()
    )
    images = "".join(
        f'<figure><img alt="{esc(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{esc(name.replace('_', ' '))}</figcaption></figure>"
        for name, png in figures.items()
    )
    rows = "".join(
        f"<tr><td>{esc(e['id'])}</td><td>{esc(', '.join(e['gold']))}</td>"
        f"<td>{esc(', '.join(e['predicted']))}</td>"
        f'<td>{e["confidence"]:.3f}</td><td class="ar" dir="rtl" lang="ar">'
        + (f"<b>{esc(e['target'])}</b> — " if e.get("target") else "")
        + (f"<b>{esc(e['title'])}</b><br>" if e.get("title") else "")
        + e.get("evidence_html", esc(e["snippet"]))
        + "</td></tr>"
        for e in errors
    )
    run = (
        f"<p>Model <code>{esc(metrics['model'])}</code> on <code>{esc(metrics['data'])}</code>: "
        f"{metrics['n']} examples, {esc(metrics['precision'])},\n"
        f"{metrics['windows_per_article']['mean']} windows per article.</p>"
    )
    per_class_header = (
        "<th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
        + ("<th>baseline F1</th>" if baseline else "")
    )
    errors_header = "<th>id</th><th>gold</th><th>predicted</th><th>confidence</th><th>text</th>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>naba evaluation: {esc(metrics["task"])}</title>
<style>
{_STYLE}</style></head><body>
<h1>Evaluation: {esc(metrics["task"])}</h1>
{run}
<table><tr>{header}</tr>{body}</table>
<h2>Per class</h2>
<table><tr>{per_class_header}</tr>{per_class}</table>
{_parts_html(metrics)}
{_relevance_html(metrics)}
<h2>Figures</h2>{images}
<h2>Most confident errors</h2>
<table><tr>{errors_header}</tr>{rows}</table>
</body></html>
"""
