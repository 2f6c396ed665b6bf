"""``naba export onnx`` and ``--runtime onnx``: the export loads, agrees with torch, and keeps
naba's output schema."""

from __future__ import annotations

import builtins
import json
import logging
import re
from pathlib import Path

import pytest

from test_stance_trust import NUCLEAR, TEXTS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from naba.infer.onnx_export import export_onnx

    return export_onnx(trained_model, tmp_path_factory.mktemp("onnx") / "model")


def _timed(exported: Path, tmp_path: Path, speed: float | None) -> Path:
    """A copy of the export whose fp32 the export timed at ``speed`` x torch (None: not timed)."""
    import shutil

    copy = tmp_path / f"speed-{speed}"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "naba.json").read_text(encoding="utf-8"))
    for task in manifest["tasks"].values():
        if speed is None:
            del task["onnx"]["speed_vs_torch"]
        else:
            task["onnx"]["speed_vs_torch"]["onnx-fp32"] = speed
    (copy / "naba.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy


def _articles() -> list[dict]:
    return [{"id": f"a{i}", "text": t, "target": NUCLEAR} for i, t in enumerate(TEXTS)]


def test_export_is_a_complete_model_that_agrees_with_torch(trained_model: Path, exported: Path):
    from naba.infer.classifier import Classifier

    manifest = json.loads((exported / "naba.json").read_text(encoding="utf-8"))
    for task in manifest["tasks"].values():
        assert (exported / task["path"] / "model.onnx").is_file()
        evidence = task["precision_evidence"]["onnx-fp32"]
        assert evidence["dev_size"] == 24 and evidence["agreement"] >= 0.99
        assert evidence["lower_bound"] < evidence["agreement"]
        if task.get("hybrid"):  # the sparse part is carried as it is
            assert (exported / task["path"] / task["hybrid"]["path"]).exists()
    torch_out = Classifier.load(trained_model).predict(_articles())
    onnx = Classifier.load(exported, runtime="onnx")
    assert {t.runtime for t in onnx.tasks.values()} == {"onnx"}
    onnx_out = onnx.predict(_articles())
    # the same schema, the same labels, scores within float noise
    assert [r.keys() for r in onnx_out] == [r.keys() for r in torch_out]
    assert [r["topics"]["labels"] for r in onnx_out] == [r["topics"]["labels"] for r in torch_out]
    assert [r["stance"][0]["label"] for r in onnx_out] == [
        r["stance"][0]["label"] for r in torch_out
    ]
    for a, b in zip(onnx_out, torch_out):
        for label, p in a["topics"]["scores"].items():
            assert p == pytest.approx(b["topics"]["scores"][label], abs=1e-4)
    # the exported directory still runs under torch
    assert (
        Classifier.load(exported, runtime="torch").predict(_articles())[0]["topics"]["labels"]
        == (torch_out[0]["topics"]["labels"])
    )


def test_int8_variant_is_kept_only_where_it_agreed(exported: Path) -> None:
    from naba.infer.classifier import Classifier

    manifest = json.loads((exported / "naba.json").read_text(encoding="utf-8"))
    for task in manifest["tasks"].values():
        share = task["precision_agreement"]["onnx-int8"]
        kept = task["onnx"]["int8"]
        assert (kept is not None) == (share >= 0.99)
        assert (exported / task["path"] / "model.int8.onnx").exists() == (kept is not None)
    clf = Classifier.load(exported, "int8", runtime="onnx")
    for name, task in manifest["tasks"].items():
        assert clf.task_precision[name] == ("int8" if task["onnx"]["int8"] else "fp32")
        assert clf.tasks[name].model.path.name == (task["onnx"]["int8"] or "model.onnx")
    # 24 dev articles cannot vouch for int8 under auto, however many agreed
    assert set(Classifier.load(exported, "auto", runtime="onnx").task_precision.values()) == {
        "fp32"
    }
    assert len(clf.predict(_articles())) == len(TEXTS)


def test_quantizing_shows_only_the_quantizers_warnings(
    exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime.quantization as quantization

    from naba.infer.onnx_export import quantize

    source = next(exported.glob("*/model.onnx"))
    with caplog.at_level(logging.INFO):
        quantization.quantize_dynamic(str(source), str(tmp_path / "raw.onnx"))
    chatter = [r for r in caplog.records if "onnxruntime" in r.pathname]
    assert any(r.levelno < logging.WARNING for r in chatter)  # the quantizer's own info lines
    caplog.clear()
    with caplog.at_level(logging.INFO):
        quantize(source, tmp_path / "quiet.onnx")
    assert [r.getMessage() for r in caplog.records if "onnxruntime" in r.pathname] == []
    assert (tmp_path / "quiet.onnx").stat().st_size > 0


def test_a_model_without_an_export_asked_for_onnx(trained_model: Path) -> None:
    from naba.errors import ModelDirError
    from naba.infer.classifier import Classifier

    with pytest.raises(ModelDirError, match=re.escape("has no ONNX export; run `naba export onnx")):
        Classifier.load(trained_model, runtime="onnx")
    # auto falls back to torch where there is no export
    assert {t.runtime for t in Classifier.load(trained_model, runtime="auto").tasks.values()} == {
        "torch"
    }


def test_a_missing_extra_is_a_one_line_error(
    exported: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from naba.errors import NabaError
    from naba.infer.classifier import Classifier

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    fast = _timed(exported, tmp_path, 2.0)  # an export auto would run, were ONNX Runtime there
    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(
        NabaError,
        match=re.escape("--runtime onnx needs ONNX Runtime: pip install 'naba[onnx]'"),
    ):
        Classifier.load(exported, runtime="onnx")
    # the default (auto) falls back to torch where ONNX Runtime is missing
    assert {t.runtime for t in Classifier.load(fast).tasks.values()} == {"torch"}


def test_auto_runs_onnx_only_where_the_export_timed_it_faster(
    exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from naba.infer.classifier import Classifier

    manifest = json.loads((exported / "naba.json").read_text(encoding="utf-8"))
    for task in manifest["tasks"].values():  # the export timed every variant on its dev articles
        assert task["onnx"]["speed_rows"] == 24
        assert set(task["onnx"]["speed_vs_torch"]) == {"onnx-fp32", "onnx-int8"}
        assert all(x > 0 for x in task["onnx"]["speed_vs_torch"].values())

    def runtimes(model: Path) -> set[str]:
        return {t.runtime for t in Classifier.load(model).tasks.values()}

    assert runtimes(_timed(exported, tmp_path, 1.05)) == {"onnx"}
    with caplog.at_level(logging.INFO, logger="naba"):
        assert runtimes(_timed(exported, tmp_path, 1.04)) == {"torch"}
        assert runtimes(_timed(exported, tmp_path, None)) == {"torch"}
    assert (
        "topic: runs in torch: its ONNX export ran at 1.04x torch fp32's speed when exported, "
        "under 1.05x" in caplog.text
    )
    assert "topic: runs in torch: its ONNX export was not timed (export it again to time it)" in (
        caplog.text
    )
    # asked for, ONNX Runtime runs whatever the timing
    assert {
        t.runtime
        for t in Classifier.load(_timed(exported, tmp_path, 0.5), runtime="onnx").tasks.values()
    } == {"onnx"}


def test_bf16_and_unknown_runtimes_are_refused(exported: Path) -> None:
    from naba.errors import NabaError
    from naba.infer.classifier import Classifier

    with pytest.raises(
        NabaError, match=re.escape("precision bf16: --runtime onnx runs fp32 or int8")
    ):
        Classifier.load(exported, "bf16", runtime="onnx")
    with pytest.raises(NabaError, match=re.escape("runtime: expected torch, onnx or auto")):
        Classifier.load(exported, runtime="tensorrt")


def test_cli_export_then_predict_with_runtime_onnx(
    trained_model: Path, exported: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    runner = CliRunner()
    out = tmp_path / "exported"
    result = runner.invoke(
        app, ["export", "onnx", str(trained_model), "-o", str(out), "--no-int8", "--max-dev", "8"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(
        r"topic: fp32 \(onnx-fp32 agrees with torch fp32 on [\d.]+% of dev\)", result.output
    )
    assert not (out / "topic" / "model.int8.onnx").exists()
    again = runner.invoke(app, ["export", "onnx", str(trained_model), "-o", str(out)])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output
    bad = runner.invoke(app, ["export", "onnx", str(trained_model), "-o", str(out), "--dev", "x"])
    assert bad.exit_code == 2
    assert "--dev 'x': expected TASK=FILE with TASK topic or stance" in bad.output

    articles = tmp_path / "in.jsonl"
    articles.write_text(
        "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in _articles()), encoding="utf-8"
    )
    rows = {}
    for runtime in ("torch", "onnx"):
        target = tmp_path / f"{runtime}.jsonl"
        result = runner.invoke(
            app,
            ["predict", str(exported), str(articles), "-o", str(target), "--runtime", runtime]
            + ["--no-progress"],
        )
        assert result.exit_code == 0, result.output
        rows[runtime] = [
            json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()
        ]
    assert [r["topics"]["labels"] for r in rows["onnx"]] == [
        r["topics"]["labels"] for r in rows["torch"]
    ]
    refused = runner.invoke(
        app,
        ["predict", str(trained_model), str(articles), "-o", str(tmp_path / "x.jsonl")]
        + ["--runtime", "onnx", "--no-progress"],
    )
    assert refused.exit_code == 2 and "has no ONNX export; run `naba export onnx" in refused.output


def test_the_service_runs_the_export_and_says_so(exported: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from naba.infer.classifier import Classifier
    from naba.serve.app import create_app

    torch_clf = Classifier.load(exported, runtime="torch")
    # asked for: under auto the runtime would depend on how fast the export timed ONNX Runtime here
    onnx_clf = Classifier.load(exported, runtime="onnx")
    with TestClient(create_app(onnx_clf)) as client:
        assert client.get("/v1/model").json()["tasks"]["topic"]["runtime"] == "onnx"
        response = client.post("/v1/classify", json={"articles": TEXTS[:3]})
    assert response.status_code == 200, response.text
    assert [r["topics"]["labels"] for r in response.json()["results"]] == [
        r["topics"]["labels"] for r in torch_clf.predict(TEXTS[:3])
    ]


def test_evaluate_with_runtime_onnx_scores_as_torch(
    exported: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from naba.evaluation.report import evaluate_model

    scored = {
        runtime: evaluate_model(
            exported,
            small_data["topic_test"],
            tmp_path / runtime,
            task="topic",
            runtime=runtime,
            show_progress_bar=False,
        )
        for runtime in ("torch", "onnx")
    }
    assert scored["onnx"]["macro_f1"] == pytest.approx(scored["torch"]["macro_f1"], abs=1e-6)
    assert scored["onnx"]["accuracy"] == pytest.approx(scored["torch"]["accuracy"], abs=1e-6)
