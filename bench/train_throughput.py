"""Training throughput: ``naba train`` against a plain Hugging Face ``Trainer`` on equal terms.

Both train the same model on the same data, batch size and length.

    python bench/train_throughput.py --base runs/encoders/e5-ant --steps 20
    python bench/train_throughput.py --base runs/encoders/tiny --steps 50 --repeats 3
    python bench/train_throughput.py --base runs/encoders/e5-bench --steps 20 --repeats 2 \\
        --before /tmp/naba-before/src
    python bench/train_throughput.py --base runs/encoders/e5-bench \\
        --data ../shared/data/asnd/train.jsonl --length 64 --batch-size 32 --group-by-length

``--group-by-length`` adds a run of each with its length grouping on (naba's
``train.group_by_length``, the Trainer's ``train_sampling_strategy=
"group_by_length"``): on texts of mixed length, fewer padded tokens per batch.

Both fine-tune the same encoder for topics on the same ANT training articles
(evenly spaced, ``steps x batch`` of them), naba's normalised title + body,
one window of ``--length`` tokens, batches of ``--batch-size``, AdamW with the
same learning rate, weight decay and linear warm-up, fp32, no evaluation or
checkpoint inside the timed steps. Each run is a fresh process (so its peak
RSS, from ``wait4``, is its own); naba and the Trainer alternate for
``--repeats`` rounds. Samples/s: naba's own in-loop figure (``metrics.jsonl``,
taken before its end-of-training evaluation) and the Trainer's
``train_samples_per_second``. Needs ../shared/data (prints a note and exits 0
when absent).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _child import TRAIN_TOPICS, child, topic_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ant"

TRAINER = """
import json, sys
import datasets
from transformers import (
    AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
    TrainingArguments,
)
base, train_file, work, length, batch, steps, grouped = sys.argv[1:8]
rows = [json.loads(line) for line in open(train_file, encoding="utf-8")]
labels = sorted({r["topics"][0] for r in rows})
tokenizer = AutoTokenizer.from_pretrained(base)
data = datasets.Dataset.from_dict(
    {"text": [r["text"] for r in rows], "label": [labels.index(r["topics"][0]) for r in rows]}
)
data = data.map(
    lambda b: tokenizer(b["text"], truncation=True, max_length=int(length)),
    batched=True,
    remove_columns=["text"],
)
model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
args = TrainingArguments(
    output_dir=work, per_device_train_batch_size=int(batch), max_steps=int(steps),
    learning_rate=5e-5, weight_decay=0.01, warmup_steps=max(1, int(0.1 * int(steps))),
    lr_scheduler_type="linear", save_strategy="no", eval_strategy="no", logging_strategy="no",
    report_to=[], disable_tqdm=True, use_cpu=True, dataloader_num_workers=0, seed=13,
    train_sampling_strategy="group_by_length" if grouped == "1" else "random",
)
collator = DataCollatorWithPadding(tokenizer)
result = Trainer(model=model, args=args, train_dataset=data, data_collator=collator).train()
print(json.dumps({"samples_per_s": result.metrics["train_samples_per_second"]}))
"""


QUIET_TOKENIZERS = {"TOKENIZERS_PARALLELISM": "false"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", required=True, help="encoder directory both fine-tune (e.g. runs/encoders/e5-ant)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--length", type=int, default=128, help="tokens per article (one window / truncation)"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--data", default=str(SHARED / "train.jsonl"), help="JSONL with text and topics"
    )
    parser.add_argument(
        "--group-by-length", action="store_true", help="also run each with length grouping"
    )
    parser.add_argument(
        "--before",
        help="another naba source tree (its src/), run as a third contender: e.g. a "
        "`git worktree` of the commit before a change",
    )
    args = parser.parse_args()
    if not Path(args.data).exists():
        print(
            f"skipped: {args.data} is not present (../shared/data is only on the developers' "
            "machines)"
        )
        return 0
    from naba.config import NormalizationConfig
    from naba.encoding import document_text

    rows = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines()]
    n = args.steps * args.batch_size
    picked = rows[:: max(1, len(rows) // n)][:n]
    work = Path(tempfile.mkdtemp(prefix="naba-train-throughput-"))
    norm = NormalizationConfig()
    # Both get the same prepared text: naba's normalised title + body, in a record naba reads as-is.
    prepared = [
        {"id": r["id"], "text": document_text(r, norm, True), "topics": r["topics"][:1]}
        for r in picked
    ]
    train_file, dev_file = work / "train.jsonl", work / "dev.jsonl"
    train_file.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in prepared), encoding="utf-8"
    )
    dev_file.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in prepared[:16]), encoding="utf-8"
    )
    groupings = ("0", "1") if args.group_by_length else ("0",)
    results: dict[str, list[dict]] = {}
    for round_ in range(args.repeats):
        for grouped in groupings:
            suffix = ", grouped by length" if grouped == "1" else ""
            name = f"naba-{grouped}-{round_}"
            config = topic_config(
                args.base,
                train_file,
                dev_file,
                args.steps,
                {"length": args.length, "stride": args.length // 8, "max_windows": 1},
                batch_size=args.batch_size,
                learning_rate=5e-5,
                head_learning_rate=5e-5,
                weight_decay=0.01,
                warmup_ratio=0.1,
                checkpoint_every=args.steps + 1,
                class_weight="none",
                group_by_length=grouped == "1",
            )
            results.setdefault(f"naba train{suffix}", []).append(
                child(
                    TRAIN_TOPICS,
                    [config, str(work / name / "model")],
                    work / f"{name}.log",
                    QUIET_TOKENIZERS,
                )
            )
            if args.before:
                name = f"before-{grouped}-{round_}"
                results.setdefault(f"naba train, before{suffix}", []).append(
                    child(
                        TRAIN_TOPICS,
                        [config, str(work / name / "model")],
                        work / f"{name}.log",
                        {**QUIET_TOKENIZERS, "PYTHONPATH": str(Path(args.before).resolve())},
                    )
                )
            name = f"trainer-{grouped}-{round_}"
            results.setdefault(f"HF Trainer{suffix}", []).append(
                child(
                    TRAINER,
                    [
                        args.base,
                        str(train_file),
                        str(work / name),
                        str(args.length),
                        str(args.batch_size),
                        str(args.steps),
                        grouped,
                    ],
                    work / f"{name}.log",
                    QUIET_TOKENIZERS,
                )
            )
    print(
        f"{args.base}: {args.steps} steps of {args.batch_size} articles, {args.length} tokens, "
        "fp32; "
        f"{args.repeats} round(s), naba and Trainer alternating"
    )
    peer = max(r["samples_per_s"] for r in results["HF Trainer"])
    print(
        "| trainer | samples/s (best) | samples/s (median) | vs Trainer | peak RSS MB | process s "
        "| process CPU s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        rates = [r["samples_per_s"] for r in runs]
        print(
            f"| {name} | {max(rates):.2f} | {statistics.median(rates):.2f} | "
            f"{max(rates) / peer:.2f}x | "
            f"{max(r['peak_rss_mb'] for r in runs):.0f} | "
            f"{statistics.median(r['wall'] for r in runs):.0f} | "
            f"{statistics.median(r['cpu_s'] for r in runs):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
