"""Compare two prediction files of the same articles: do two versions of naba give the same labels?

A refactor of the decision keeps behaviour: predict the same model on the same
articles with the code before and after, then::

    python bench/compare_predictions.py before.jsonl after.jsonl

prints, per task, the rows compared, how many labels differ (each difference
listed), and the largest difference of any score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def entries(record: dict) -> dict[str, tuple[list[str], dict[str, float]]]:
    """Each task's (labels, scores) of one record: ``topics``, and ``stance:TARGET`` per target."""
    out = {}
    if "topics" in record:
        out["topics"] = (record["topics"]["labels"], record["topics"]["scores"])
    for entry in record.get("stance") or ():
        out[f"stance:{entry['target']}"] = ([entry["label"]], entry["scores"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = read(args.before), read(args.after)
    if [r.get("id") for r in before] != [r.get("id") for r in after]:
        raise SystemExit("the two files do not hold the same articles in the same order")
    rows: dict[str, int] = {}
    differ: dict[str, list[str]] = {}
    largest: dict[str, float] = {}
    for old, new in zip(before, after):
        a, b = entries(old), entries(new)
        if a.keys() != b.keys():
            raise SystemExit(f"{old.get('id')}: tasks differ: {sorted(a)} vs {sorted(b)}")
        for key, (labels, scores) in a.items():
            task = key.split(":")[0]
            rows[task] = rows.get(task, 0) + 1
            new_labels, new_scores = b[key]
            if labels != new_labels:
                differ.setdefault(task, []).append(
                    f"{old.get('id')} {key}: {labels} -> {new_labels}"
                )
            gap = max(abs(scores[k] - new_scores[k]) for k in scores)
            largest[task] = max(largest.get(task, 0.0), gap)
    print("| task | rows | labels that differ | largest score difference |")
    print("|---|---|---|---|")
    for task in rows:
        print(f"| {task} | {rows[task]} | {len(differ.get(task, []))} | {largest[task]:.2e} |")
    for lines in differ.values():
        for line in lines:
            print(line)


if __name__ == "__main__":
    main()
