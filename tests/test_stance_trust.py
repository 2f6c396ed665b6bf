"""Stance a newsroom can trust: scored only where asked, unrelated pairs in
training, int8 only where it agrees."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from naba.errors import InputError, NabaError

TEXTS = [
    "أعلنت وزارة الطاقة عن خطة لبناء محطة نووية جديدة",
    "ارتفعت أسعار النفط في الأسواق العالمية",
    "فاز المنتخب الوطني بالبطولة بعد مباراة مثيرة",
]
NUCLEAR = "الطاقة النووية"
runner = CliRunner()


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


# ----------------------------------------------------------------------- 1. stance only where asked


def test_no_targets_no_stance(clf) -> None:
    results = clf.predict(TEXTS)
    assert [sorted(r) for r in results] == [["topics"]] * 3


def test_explicit_record_and_all_targets(clf) -> None:
    given = clf.predict(TEXTS[:2], targets=[NUCLEAR, "العمل عن بعد"])
    assert [[s["target"] for s in r["stance"]] for r in given] == [[NUCLEAR, "العمل عن بعد"]] * 2
    mixed = clf.predict([TEXTS[0], {"text": TEXTS[1], "target": NUCLEAR}])
    assert "stance" not in mixed[0] and [s["target"] for s in mixed[1]["stance"]] == [NUCLEAR]
    trained = clf.tasks["stance"].spec.default_targets
    assert len(trained) == 4
    every = clf.predict(TEXTS, all_targets=True)
    assert all([s["target"] for s in r["stance"]] == trained for r in every)
    with pytest.raises(NabaError, match=re.escape("targets and all_targets: pass one of them")):
        clf.predict(TEXTS, targets=[NUCLEAR], all_targets=True)


def test_task_selection(clf) -> None:
    topics_only = clf.predict(TEXTS, targets=[NUCLEAR], tasks=["topic"])
    assert [sorted(r) for r in topics_only] == [["topics"]] * 3
    stance_only = clf.predict(TEXTS, targets=[NUCLEAR], tasks="stance")
    assert [sorted(r) for r in stance_only] == [["stance"]] * 3
    both = clf.predict(TEXTS, targets=[NUCLEAR], tasks="topic,stance")
    assert [sorted(r) for r in both] == [["stance", "topics"]] * 3
    assert (
        both[0]["stance"] == stance_only[0]["stance"]
        and both[0]["topics"] == topics_only[0]["topics"]
    )
    with pytest.raises(
        NabaError, match=re.escape("tasks: unknown task 'sentiment'; expected topic and/or stance")
    ):
        clf.predict(TEXTS, tasks=["sentiment"])
    with pytest.raises(
        NabaError,
        match=re.escape(
            "stance: no article has a target; pass targets=[...], all_targets=True "
            "or records with a 'target'"
        ),
    ):
        clf.predict(TEXTS, tasks=["stance"])


def test_task_the_model_lacks(trained_model: Path, tmp_path: Path) -> None:
    from naba.infer.classifier import Classifier

    topic_only = _edited_copy(trained_model, tmp_path / "m", lambda m: m["tasks"].pop("stance"))
    with pytest.raises(
        NabaError, match=re.escape("tasks: this model has no stance task (it has topic)")
    ):
        Classifier.load(topic_only).predict(TEXTS, targets=[NUCLEAR], tasks=["stance"])


def test_one_string_is_one_article(clf) -> None:
    one = clf.predict(TEXTS[0], targets=[NUCLEAR])
    assert isinstance(one, dict) and one == clf.predict([TEXTS[0]], targets=[NUCLEAR])[0]
    assert clf.predict({"text": TEXTS[1], "target": NUCLEAR})["stance"][0]["target"] == NUCLEAR


def _cli(*args):
    from naba.cli import app

    return runner.invoke(app, [str(a) for a in args])


def test_cli_predict_tasks_targets_and_all_targets(
    clf, trained_model: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": f"a{i}", "text": t}, ensure_ascii=False) + "\n"
            for i, t in enumerate(TEXTS)
        )
        + json.dumps({"id": "own", "text": TEXTS[0], "target": NUCLEAR}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )

    def run(name: str, *options) -> list[dict]:
        result = _cli(
            "predict", trained_model, src, "-o", tmp_path / name, "--no-progress", *options
        )
        assert result.exit_code == 0, result.output
        return [
            json.loads(line) for line in (tmp_path / name).read_text(encoding="utf-8").splitlines()
        ]

    plain = run("plain.jsonl")
    assert [("stance" in r) for r in plain] == [
        False,
        False,
        False,
        True,
    ]  # only the row with a target column
    assert [s["target"] for s in plain[3]["stance"]] == [NUCLEAR]
    topics = run("topics.jsonl", "--tasks", "topic")
    assert [sorted(r) for r in topics] == [["id", "topics"]] * 4
    named = run("named.jsonl", "--tasks", "stance", "--target", "العمل عن بعد")
    assert [sorted(r) for r in named] == [["id", "stance"]] * 4
    assert {s["target"] for r in named for s in r["stance"]} == {"العمل عن بعد"}
    every = run("every.jsonl", "--all-targets")
    assert all(len(r["stance"]) == 4 for r in every)
    csv_topics = _cli(
        "predict", trained_model, src, "-o", tmp_path / "t.csv", "--no-progress", "--tasks", "topic"
    )
    assert csv_topics.exit_code == 0, csv_topics.output
    assert (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines()[0] == ",".join(
        ["id", "topics.labels", *(f"topics.scores.{label}" for label in clf.labels["topic"])]
    )
    bad = _cli("predict", trained_model, src, "-o", tmp_path / "bad.jsonl", "--tasks", "sentiment")
    assert bad.exit_code == 2
    assert "error: tasks: unknown task 'sentiment'; expected topic and/or stance" in bad.output
    assert not (tmp_path / "bad.jsonl").exists()


def test_service_tasks_and_targets(clf) -> None:
    from fastapi.testclient import TestClient

    from naba.serve.app import create_app

    with TestClient(create_app(clf)) as client:

        def post(**body):
            return client.post("/v1/classify", json={"articles": TEXTS[:2], **body})

        assert [sorted(r) for r in post().json()["results"]] == [["topics"]] * 2
        assert [sorted(r) for r in post(targets=[NUCLEAR], tasks=["stance"]).json()["results"]] == [
            ["stance"]
        ] * 2
        every = post(all_targets=True).json()["results"]
        assert [len(r["stance"]) for r in every] == [4, 4]
        both = post(targets=[NUCLEAR], all_targets=True)
        assert (
            both.status_code == 422
            and "targets and all_targets: pass one of them" in both.json()["detail"]
        )
        unknown = post(tasks=["sentiment"])
        assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"][:2] == [
            "body",
            "tasks",
        ]
        info = client.get("/v1/model").json()["tasks"]["stance"]
        assert info["default_targets"] == clf.tasks["stance"].spec.default_targets
        assert "scored only toward" in info["targets"] and info["unrelated"]["label"] == "none"


# -------------------------------------------------------------------- 2. relevance: unrelated pairs


def _stance_config(
    tmp_path: Path,
    train: list[dict],
    dev: list[dict],
    test: list[dict],
    topic: dict | None = None,
    **stance_options,
):
    from naba.config import NabaConfig

    paths = {}
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        paths[name] = tmp_path / f"stance_{name}.jsonl"
        paths[name].write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    tasks = {"stance": {**{k: str(v) for k, v in paths.items()}, **stance_options}}
    if topic:
        tasks["topic"] = topic
    return NabaConfig.model_validate({"tasks": tasks, "model": {"base": "unused"}})


def _pairs(
    prefix: str, targets: list[str], per_target: int, labels=("favor", "against", "none")
) -> list[dict]:
    return [
        {
            "id": f"{prefix}{t}{i}",
            "text": f"نص {prefix} رقم {i} عن {t}",
            "target": t,
            "stance": labels[i % len(labels)],
        }
        for t in targets
        for i in range(per_target)
    ]


def test_unrelated_pairs_stay_in_their_split_and_are_neutral(tmp_path: Path) -> None:
    from naba.data.unrelated import text_key
    from naba.train.data import add_unrelated_pairs, load_task_data

    targets = ["أ", "ب", "ج"]
    train, dev, test = (
        _pairs("تدريب", targets, 10),
        _pairs("تطوير", targets, 4),
        _pairs("اختبار", targets, 4),
    )
    shared = {
        "id": "dup",
        "text": dev[0]["text"],
        "target": "ب",
        "stance": "favor",
    }  # a dev text also in train
    config = _stance_config(tmp_path, [*train, shared], dev, test, unrelated_ratio=0.5)
    data = load_task_data(config, "stance")
    add_unrelated_pairs(data, config)
    norm = config.normalization
    generated = [r for r in data.splits["train"] if r.get("unrelated")]
    assert len(generated) == round(0.5 * 31) == data.unrelated["pairs"]["train"]
    assert data.unrelated == {
        "label": "none",
        "ratio": 0.5,
        "pairs": {"train": 16, "dev": 6, "test": 6},
        "sources": ["stance"],
    }
    held_out = {text_key(r["text"], norm) for r in dev + test}
    assert not {text_key(r["text"], norm) for r in generated} & held_out
    for split, real in (("train", train + [shared]), ("dev", dev), ("test", test)):
        pairs = generated if split == "train" else data.unrelated_pairs[split]
        own = {(text_key(r["text"], norm), r["target"]) for r in real}
        texts = {text_key(r["text"], norm) for r in real}
        assert all(r["stance"] == "none" for r in pairs)
        assert all(
            (text_key(r["text"], norm), r["target"]) not in own for r in pairs
        )  # never a target it is about
        assert {text_key(r["text"], norm) for r in pairs} <= texts  # only the split's own texts
        assert len({(r["text"], r["target"]) for r in pairs}) == len(pairs)
    again = load_task_data(config, "stance")
    add_unrelated_pairs(again, config)
    assert again.splits["train"] == data.splits["train"]  # deterministic for a seed


def test_unrelated_pairs_use_topic_articles_of_the_same_split(
    tmp_path: Path, small_data: dict[str, Path]
) -> None:
    from naba.data.records import load_records
    from naba.train.data import add_unrelated_pairs, load_task_data

    targets = ["أ", "ب"]
    topic = {split: str(small_data[f"topic_{split}"]) for split in ("train", "dev", "test")}
    config = _stance_config(
        tmp_path,
        _pairs("تدريب", targets, 40),
        _pairs("تطوير", targets, 5),
        _pairs("اختبار", targets, 5),
        topic=topic,
        unrelated_ratio=1.0,
    )
    stance, topics = load_task_data(config, "stance"), load_task_data(config, "topic")
    add_unrelated_pairs(stance, config, topics)
    assert stance.unrelated["sources"] == ["stance", "topic"]
    topic_texts = {
        split: {r["text"] for r in load_records(small_data[f"topic_{split}"], "topic")}
        for split in ("train", "dev", "test")
    }
    train_texts = {r["text"] for r in stance.splits["train"] if r.get("unrelated")}
    assert train_texts & topic_texts["train"] and not train_texts & (
        topic_texts["dev"] | topic_texts["test"]
    )
    assert {r["text"] for r in stance.unrelated_pairs["dev"]} & topic_texts["dev"]


def test_neutral_label_is_found_configured_or_a_clear_error(tmp_path: Path) -> None:
    from naba.data.unrelated import neutral_label
    from naba.train.data import add_unrelated_pairs, load_task_data

    assert neutral_label(["agree", "disagree", "other"], None, "x") == "other"
    assert neutral_label(["Favor", "Against", "NONE"], None, "x") == "NONE"
    assert neutral_label(["pro", "con", "skip"], "skip", "x") == "skip"
    rows = _pairs("تدريب", ["أ", "ب"], 6, labels=("pro", "con"))
    config = _stance_config(tmp_path, rows, rows[:4], rows[:4])
    data = load_task_data(config, "stance")
    with pytest.raises(
        InputError,
        match=re.escape(
            f"{tmp_path / 'stance_train.jsonl'}: tasks.stance.unrelated: none of the stance labels "
            "(con, pro) is a neutral "
            "label (none, neutral, other, unrelated, neither); set tasks.stance.neutral_label to "
            "the label meaning 'no stance "
            "toward the target', or tasks.stance.unrelated=false"
        ),
    ):
        add_unrelated_pairs(data, config)
    wrong = _stance_config(tmp_path, rows, rows[:4], rows[:4], neutral_label="neutral")
    with pytest.raises(
        InputError,
        match=re.escape(
            "tasks.stance.neutral_label: 'neutral' is not a stance label of the data (con, pro)"
        ),
    ):
        add_unrelated_pairs(load_task_data(wrong, "stance"), wrong)
    off = _stance_config(tmp_path, rows, rows[:4], rows[:4], unrelated=False)
    plain = load_task_data(off, "stance")
    add_unrelated_pairs(plain, off)
    assert plain.unrelated is None and len(plain.splits["train"]) == len(rows)


def test_train_records_unrelated_relevance_and_int8_agreement(trained_model: Path) -> None:
    manifest = json.loads((trained_model / "naba.json").read_text(encoding="utf-8"))
    stance = manifest["tasks"]["stance"]
    assert stance["unrelated"]["label"] == "none" and stance["unrelated"]["ratio"] == 0.5
    assert stance["unrelated"]["sources"] == ["stance", "topic"]
    assert stance["unrelated"]["pairs"]["train"] == 32  # half of the 64 training pairs
    relevance = stance["metrics"]["relevance"]
    assert relevance["dev"]["pairs"] == 12 and 0.0 <= relevance["dev"]["neutral_share"] <= 1.0
    for task in manifest["tasks"].values():
        assert 0.0 <= task["precision_agreement"]["int8"] <= 1.0
    assert manifest["tasks"]["topic"]["unrelated"] is None


def test_evaluate_reports_relevance(
    trained_model: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from naba.evaluation.report import evaluate_model

    metrics = evaluate_model(
        trained_model, small_data["stance_test"], tmp_path / "r", task="stance"
    )
    rel = metrics["relevance"]
    assert rel["neutral_label"] == "none" and rel["pairs"] == 24
    assert sum(v["pairs"] for v in rel["per_target"].values()) == 24
    assert "## Relevance" in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "<h2>Relevance</h2>" in (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    news = tmp_path / "news.jsonl"
    news.write_text(
        "".join(
            json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n"
            for i, t in enumerate(TEXTS)
        ),
        encoding="utf-8",
    )
    given = evaluate_model(
        trained_model, small_data["stance_test"], tmp_path / "g", task="stance", unrelated=news
    )
    assert given["relevance"]["pairs"] == 3 and given["relevance"]["source"] == str(news)
    topic = evaluate_model(trained_model, small_data["topic_test"], tmp_path / "t", task="topic")
    assert "relevance" not in topic


# ------------------------------------------------------------ 3. the same answer at every precision


def _edited_copy(model: Path, out: Path, edit) -> Path:
    shutil.copytree(model, out)
    manifest = json.loads((out / "naba.json").read_text(encoding="utf-8"))
    edit(manifest)
    (out / "naba.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return out


def test_int8_keeps_a_disagreeing_task_in_fp32(trained_model: Path, tmp_path: Path, caplog) -> None:
    from naba.infer.classifier import Classifier
    from naba.infer.precision import evidence

    def agreement(topic, stance):
        def edit(m):
            for task, value in (("topic", topic), ("stance", stance)):
                m["tasks"][task]["precision_agreement"] = {} if value is None else {"int8": value}
                m["tasks"][task]["precision_evidence"] = (
                    {} if value is None else {"int8": evidence(value, 5000)}
                )

        return edit

    mixed = _edited_copy(trained_model, tmp_path / "mixed", agreement(0.995, 0.944))
    with caplog.at_level(logging.WARNING, logger="naba"):
        int8 = Classifier.load(mixed, "int8")
    assert int8.task_precision == {"topic": "int8", "stance": "fp32"}
    assert (
        "warning: stance: stays in fp32 under --precision int8: int8 changed 5.6% of its dev "
        "labels when trained "
        "(agreement 94.40%, below 99%)"
    ) in caplog.text
    fp32 = Classifier.load(mixed)
    same = [r["stance"] for r in int8.predict(TEXTS, targets=[NUCLEAR])]
    assert same == [
        r["stance"] for r in fp32.predict(TEXTS, targets=[NUCLEAR])
    ]  # the fp32 task gives fp32's answer
    assert Classifier.load(mixed, "auto").task_precision == {"topic": "int8", "stance": "fp32"}
    unknown = _edited_copy(trained_model, tmp_path / "unknown", agreement(None, None))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="naba"):
        assert Classifier.load(unknown, "int8").task_precision == {
            "topic": "int8",
            "stance": "int8",
        }
    assert "warning: topic: int8 label agreement with fp32 is not recorded" in caplog.text
    assert Classifier.load(unknown, "auto").task_precision == {"topic": "fp32", "stance": "fp32"}


def test_predict_auto_says_which_precision_each_task_runs_in(
    trained_model: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from naba.cli import app
    from naba.infer.precision import evidence

    mixed = _edited_copy(
        trained_model,
        tmp_path / "m",
        lambda m: (
            m["tasks"]["topic"].update(
                precision_agreement={"int8": 0.996},
                precision_evidence={"int8": evidence(0.996, 5000)},
            ),
            m["tasks"]["stance"].update(
                precision_agreement={"int8": 0.969},
                precision_evidence={"int8": evidence(0.969, 5000)},
            ),
        ),
    )
    articles = tmp_path / "in.jsonl"
    articles.write_text(
        json.dumps({"id": "a", "text": TEXTS[0], "target": NUCLEAR}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(mixed),
            str(articles),
            "-o",
            str(tmp_path / "out.jsonl"),
            "--precision",
            "auto",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "precision auto: topic int8 (int8 agreed with fp32 on 99.6% of 5000 dev articles, 95% "
        "lower bound 99.4%), "
        "stance fp32 (int8 agreed with fp32 on 96.9% of 5000 dev articles, 95% lower bound 96.4%)"
    ) in result.output
    plain = CliRunner().invoke(
        app,
        ["predict", str(mixed), str(articles), "-o", str(tmp_path / "out2.jsonl"), "--no-progress"],
    )
    assert "precision" not in plain.output  # fp32 was asked for: nothing to say


def test_evaluate_int8_states_the_task_precision(
    trained_model: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from naba.evaluation.report import evaluate_model

    fallback = _edited_copy(
        trained_model,
        tmp_path / "m",
        lambda m: m["tasks"]["stance"].update(precision_agreement={"int8": 0.5}),
    )
    fp32 = evaluate_model(fallback, small_data["stance_test"], tmp_path / "a", task="stance")
    int8 = evaluate_model(
        fallback, small_data["stance_test"], tmp_path / "b", task="stance", precision="int8"
    )
    assert int8["precision"] == "int8" and int8["task_precision"] == "fp32"
    assert int8["macro_f1"] == fp32["macro_f1"]


# ----------------------------------------------------------- no silent loss, nothing left on exit 2


def test_train_never_discards_an_interrupted_run_silently(
    tiny_encoder: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from conftest import task_paths, write_config
    from naba.config import load_config
    from naba.train.trainer import train

    cfg = load_config(
        write_config(tmp_path / "cfg.yaml", tiny_encoder, task_paths(small_data, "single"))
    )
    work = tmp_path / "model.partial"
    (work / "topic" / "checkpoint").mkdir(parents=True)
    with pytest.raises(
        FileExistsError,
        match=re.escape(
            f"{work}: holds the checkpoints of an interrupted run; pass "
            "--resume to continue it, or --overwrite to discard it and start again"
        ),
    ):
        train(cfg, tmp_path / "model", show_progress_bar=False)
    assert (work / "topic" / "checkpoint").is_dir()


def test_train_with_a_base_that_cannot_be_loaded_leaves_nothing(
    tiny_encoder: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from conftest import task_paths, write_config

    broken = tmp_path / "broken"
    shutil.copytree(tiny_encoder, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    config = write_config(tmp_path / "cfg.yaml", broken, task_paths(small_data, "single"))
    result = _cli("train", config, "-o", tmp_path / "model", "--no-progress")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"error: {broken}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "cfg.yaml"]


def test_predict_reads_standard_input(trained_model: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    lines = "ارتفعت أسعار النفط\n\nفاز المنتخب بالبطولة\n"
    out = tmp_path / "o.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "naba",
            "predict",
            str(trained_model),
            "-",
            "--format",
            "txt",
            "-o",
            str(out),
            "--tasks",
            "topic",
            "--no-progress",
        ],
        input=lines.encode("utf-8"),
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [
        "1",
        "3",
    ]
    resumed = _cli("predict", trained_model, "-", "-o", tmp_path / "r.jsonl", "--resume")
    assert resumed.exit_code == 2
    assert (
        "error: --resume: standard input cannot be read again; save it to a file to make the run "
        "resumable" in resumed.output
    )


# ------------------------------------------------------------------ data checks agree with validate


def test_training_drops_duplicate_pairs_and_never_splits_a_text_across_train_and_dev(
    tmp_path: Path, caplog
) -> None:
    from naba.data.unrelated import text_key
    from naba.train.data import load_task_data

    rows = _pairs("تدريب", ["أ", "ب", "ج"], 12)
    rows.append({**rows[0], "id": "again"})  # the same (target, text) pair twice
    rows += [
        {"id": f"multi{i}", "text": rows[i]["text"], "target": "د", "stance": "none"}
        for i in range(0, 36, 3)
    ]
    config = _stance_config(tmp_path, rows, rows[:1], rows[:1])
    config.tasks.stance.dev = None
    config.tasks.stance.dev_fraction = 0.3
    with caplog.at_level(logging.WARNING, logger="naba"):
        data = load_task_data(config, "stance")
    assert (
        f"warning: {tmp_path / 'stance_train.jsonl'}: 1 duplicate (target, text) pairs removed, "
        "the first of each kept "
        f"(e.g. id again repeats {rows[0]['id']})"
    ) in caplog.text
    assert data.fingerprints["train"]["duplicates_removed"] == 1 and data.fingerprints["train"][
        "rows"
    ] == len(rows)
    assert len(data.splits["train"]) + len(data.splits["dev"]) == len(rows) - 1
    norm = config.normalization
    train_texts = {text_key(r["text"], norm) for r in data.splits["train"]}
    assert not train_texts & {text_key(r["text"], norm) for r in data.splits["dev"]}
    assert 0.2 * len(rows) <= len(data.splits["dev"]) <= 0.4 * len(rows)
