"""The HTML page of ``naba review --report``: suspects with their evidence marked in the article.

In the style of the evaluation report (:mod:`naba.evaluation.report`): one
self-contained page, Arabic right-to-left. Evidence for a suggested label is
marked green in the text, evidence for a given label that review doubts amber.
:func:`marked` is shared with the evaluation report's most confident errors.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

PAGE_ROWS = 200  # suspects on the page (the JSONL has them all)

STYLE = """
body { font-family: system-ui, "Noto Sans", "Noto Naskh Arabic", "DejaVu Sans", sans-serif;
  margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #f3f3f3; }
.ar { text-align: right; unicode-bidi: isolate; font-size: 1.05em; max-width: 44em;
  line-height: 1.7; }
mark.for { background: #c8f0c8; } mark.against { background: #ffe0a0; }
.small { font-size: 0.85em; color: #555; }
"""


def marked(text: str, spans: list[tuple[int, int, str]]) -> str:
    """``text`` HTML-escaped, each ``(start, end, css_class)`` span in a ``<mark>`` (first wins)."""
    out, last = [], 0
    for start, end, kind in sorted(spans):
        if start < last or end <= start:
            continue
        out += [html.escape(text[last:start]), f'<mark class="{kind}">']
        out += [html.escape(text[start:end]), "</mark>"]
        last = end
    return "".join(out) + html.escape(text[last:])


def marked_fields(
    record: dict[str, Any], evidence: dict[str, list[dict[str, Any]]], kinds: dict[str, str]
) -> str:
    """A record's title (bold) and text with the evidence of each label marked by its kind."""
    parts = []
    for name in ("title", "text"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        spans = [
            (item["start"], item["end"], kinds.get(label, "for"))
            for label, items in evidence.items()
            for item in items
            if item["field"] == name
        ]
        body = marked(value, spans).replace("\n", "<br>")
        parts.append(f"<b>{body}</b>" if name == "title" else body)
    return "<br>".join(parts)


def _evidence_list(evidence: dict[str, list[dict[str, Any]]]) -> str:
    esc = html.escape
    return "<br>".join(
        f"{esc(label)}: "
        + '<span dir="rtl" lang="ar">'
        + "، ".join(f"{esc(i['text'])} ({i['weight']:.2f})" for i in items)
        + "</span>"
        for label, items in evidence.items()
        if items
    )


def _rules(row: dict[str, Any]) -> str:
    esc = html.escape
    return "<br>".join(
        f"{esc(str(r.get('topic')))} ← {esc(str(r.get('rule')))}: "
        f'<span dir="rtl" lang="ar">{esc(str(r.get("phrase", "")))}</span>'
        for r in row.get("labels_from", [])
    )


def write_review_report(
    rows: list[dict[str, Any]],
    records: dict[Any, dict[str, Any]],
    directory: Path,
    *,
    task: str,
    data: str,
) -> Path:
    """Write ``review.html`` into ``directory`` (created) and return its path.

    Args:
        rows: :func:`naba.evaluation.review.review_records`' rows, most suspect first.
        records: The reviewed records by id (for their title and text).
    """
    from naba.atomic import atomic_file

    esc = html.escape
    body = []
    for row in rows[:PAGE_ROWS]:
        record = records.get(row["id"], {})
        given, suggested = set(row["given"]), set(row["suggested"])
        kinds = {label: "for" for label in suggested} | {
            label: "against" for label in given - suggested
        }
        target = f"<b>{esc(row['target'])}</b> — " if row.get("target") else ""
        body.append(
            f"<tr><td>{esc(str(row['id']))}</td><td>{esc(', '.join(row['given']))}</td>"
            f"<td>{esc(', '.join(row['suggested']))}</td><td>{row['score']:.3f}"
            f"{'' if row['flagged'] else '<br><span class=small>not flagged</span>'}</td>"
            f"<td>{_rules(row)}</td>"
            f'<td class="ar" dir="rtl" lang="ar">{target}'
            f"{marked_fields(record, row.get('evidence', {}), kinds)}"
            f'<p class="small" dir="ltr">{_evidence_list(row.get("evidence", {}))}</p></td></tr>'
        )
    flagged = sum(r["flagged"] for r in rows)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>naba review: {esc(task)}</title>
<style>{STYLE}</style></head><body>
<h1>Review: {esc(task)} labels most likely wrong</h1>
<p><code>{esc(data)}</code>: {flagged} rows flagged by confident learning (cleanlab),
most suspect first
(score = 1 - label quality){f"; the first {PAGE_ROWS} shown" if len(rows) > PAGE_ROWS else ""}.
In the text, <mark class="for">green</mark>: words that weigh for a suggested label;
<mark class="against">amber</mark>: for a given label review doubts.</p>
<table><tr><th>id</th><th>given</th><th>suggested</th><th>score</th><th>taxonomy rule</th>
<th>article and evidence</th></tr>
{"".join(body)}
</table></body></html>
"""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "review.html"
    with atomic_file(path) as handle:
        handle.write(page)
    return path


def add_error_evidence(
    errors: list[dict[str, Any]], records: list[dict[str, Any]], model: Any, k: int = 5
) -> None:
    """Give the evaluation report's most confident errors ``evidence`` and ``evidence_html``.

    For each error, the ``k`` words or phrases that weigh most in the sparse
    part for each predicted label (marked amber where the label is wrong) and
    each gold label (green), marked in the article's title and text.
    """
    from naba.infer.evidence import evidence_records

    by_id = {r.get("id"): r for r in records}
    for error in errors:
        record = by_id.get(error["id"])
        if record is None:
            continue
        wanted = list(dict.fromkeys(error["predicted"] + error["gold"]))
        evidence = evidence_records(model, [record], [wanted], k)[0]
        kinds = {label: "for" for label in error["gold"]} | {
            label: "against" for label in error["predicted"] if label not in error["gold"]
        }
        error["evidence"] = evidence
        error["evidence_html"] = (
            marked_fields({"text": record["text"]}, evidence, kinds)
            + f'<p class="small" dir="ltr">{_evidence_list(evidence)}</p>'
        )
