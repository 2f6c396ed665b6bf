"""naba pretrain: MLM training from scratch and from an encoder, tied heads,
determinism, kill -9 and resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, SAMPLE, Elided, kill_at_checkpoint, task_paths, write_config
from naba.config_loading import ConfigError
from naba.pretrain_config import load_pretrain_config

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}
ARTICLES = SAMPLE / "articles.jsonl"


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """The runs here use train.torch_threads=1 (set process-wide); give the
    other modules their threads back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def write_pretrain_config(path: Path, **sections: dict) -> Path:
    """A tiny from-scratch run on the sample articles: 40 steps, a checkpoint every step."""
    config = {
        "output_dir": str(path.parent / "encoder"),
        "corpus": {"files": [str(ARTICLES)], "eval_fraction": 0.1, "max_length": 64},
        "model": {
            "base": None,
            "from_scratch": {
                "layers": 2,
                "hidden": 32,
                "heads": 2,
                "vocab_size": 1000,
                "max_positions": 128,
            },
        },
        "train": {
            "max_steps": 40,
            "batch_size": 8,
            "learning_rate": 5e-3,
            "warmup_ratio": 0.05,
            "eval_every": 10,
            "checkpoint_every": 1,
            "torch_threads": 1,
            "seed": 13,
        },
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _record(encoder: Path) -> dict:
    return json.loads((encoder / "pretrain.json").read_text(encoding="utf-8"))


def _steps(encoder: Path) -> list[int]:
    lines = (encoder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["step"] for line in lines]


@pytest.fixture(scope="module")
def scratch_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pretrain_config(tmp_path_factory.mktemp("pretrain") / "scratch.yaml")


@pytest.fixture(scope="module")
def scratch(scratch_config: Path) -> Path:
    """The uninterrupted reference run."""
    from naba.train.pretrain import pretrain

    return pretrain(
        load_pretrain_config(scratch_config), scratch_config.parent / "a", show_progress_bar=False
    )


# ----------------------------------------------------------------------------- text preparation


def test_pack_blocks_wraps_each_block_and_drops_the_partial_tail(tiny_encoder: Path) -> None:
    from transformers import AutoTokenizer

    from naba.train.mlm_data import pack_blocks

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    texts = ["عقد العراق والولايات المتحدة الجلسة الأولى من المحادثات الرسمية في بغداد"] * 10
    blocks = pack_blocks(tokenizer, texts, 16)
    per_text = (
        len(tokenizer(texts[0], add_special_tokens=False)["input_ids"]) + 1
    )  # + the separator
    assert blocks.shape == (per_text * 10 // 14, 16)
    assert (blocks[:, 0] == tokenizer.cls_token_id).all() and (
        blocks[:, -1] == tokenizer.sep_token_id
    ).all()
    assert tokenizer.pad_token_id not in blocks
    # too little text for one block: one padded block rather than none
    short = pack_blocks(tokenizer, ["بغداد"], 16)
    assert short.shape == (1, 16) and short[0, -1] == tokenizer.pad_token_id


def test_mask_tokens_is_seeded_and_spares_special_tokens() -> None:
    from naba.train.mlm_data import IGNORE_INDEX, mask_tokens

    blocks = np.random.default_rng(0).integers(5, 1000, size=(64, 32)).astype(np.int32)
    blocks[:, 0], blocks[:, -1], blocks[-1, 20:] = 2, 3, 0
    first = mask_tokens(blocks, np.random.default_rng([13, 1, 7]), 0.15, 4, 1000, [0, 1, 2, 3, 4])
    second = mask_tokens(blocks, np.random.default_rng([13, 1, 7]), 0.15, 4, 1000, [0, 1, 2, 3, 4])
    inputs, labels = first
    assert np.array_equal(inputs, second[0]) and np.array_equal(labels, second[1])
    picked = labels != IGNORE_INDEX
    assert not picked[np.isin(blocks, [0, 2, 3])].any()
    assert 0.12 < picked.mean() < 0.18
    assert np.array_equal(labels[picked], blocks[picked])
    assert 0.75 < (inputs[picked] == 4).mean() < 0.85
    assert np.array_equal(inputs[~picked], blocks[~picked])


# ----------------------------------------------------------------------------- from scratch


def test_scratch_run_writes_a_loadable_encoder_directory(scratch: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "pretrain.json",
        "config.yaml",
        "metrics.jsonl",
        "train.log",
    ):
        assert (scratch / name).is_file(), name
    assert not scratch.with_name(scratch.name + ".partial").exists()
    with safe_open(str(scratch / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    assert "embeddings.word_embeddings.weight" in keys and not any(
        k.startswith(("cls.", "bert.")) for k in keys
    )
    model, info = AutoModel.from_pretrained(scratch, output_loading_info=True)
    assert type(model).__name__ == "BertModel" and not info["missing_keys"]
    tokenizer = AutoTokenizer.from_pretrained(scratch)
    assert tokenizer.is_fast and tokenizer.mask_token == "[MASK]"
    assert (
        model(**tokenizer("عقد العراق الجلسة الأولى", return_tensors="pt")).last_hidden_state.shape[
            -1
        ]
        == 32
    )
    assert (
        AutoModelForSequenceClassification.from_pretrained(scratch, num_labels=3).config.num_labels
        == 3
    )

    record = _record(scratch)
    assert (
        record["steps"] == 40
        and record["base_model"] is None
        and record["from_scratch"]["hidden"] == 32
    )
    assert record["final_eval_perplexity"] == pytest.approx(np.exp(record["final_eval_loss"]))
    corpus = record["corpus"]
    assert corpus["files"][0]["path"] == str(ARTICLES) and len(corpus["files"][0]["sha256"]) == 64
    assert corpus["texts"] == 240 and corpus["eval_texts"] == 24 and corpus["train_blocks"] > 0
    assert record["config"]["train"]["max_steps"] == 40
    assert _steps(scratch) == [0, 10, 20, 30, 40]


def test_eval_loss_falls_from_step_zero(scratch: Path) -> None:
    record = _record(scratch)
    assert record["initial_eval_loss"] > 6.0  # about ln(vocabulary): the untrained model guesses
    assert record["final_eval_loss"] < record["initial_eval_loss"] - 0.5
    assert record["best_eval_loss"] <= record["final_eval_loss"]


def test_same_seed_same_losses_and_weights(scratch: Path, scratch_config: Path) -> None:
    from naba.train.pretrain import pretrain

    again = pretrain(
        load_pretrain_config(scratch_config, ["train.max_steps=20"]),
        scratch_config.parent / "b",
        show_progress_bar=False,
    )
    twice = pretrain(
        load_pretrain_config(scratch_config, ["train.max_steps=20"]),
        scratch_config.parent / "c",
        show_progress_bar=False,
    )
    assert _record(again)["final_eval_loss"] == _record(twice)["final_eval_loss"]
    assert (again / "model.safetensors").read_bytes() == (twice / "model.safetensors").read_bytes()
    assert (again / "tokenizer.json").read_bytes() == (
        twice / "tokenizer.json"
    ).read_bytes()  # the vocabulary too
    # the first 20 steps of the 40-step reference see the same batches and
    # masks (only the schedule differs)
    first = json.loads((scratch / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["eval_loss"] == _record(again)["initial_eval_loss"]


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "naba", "-q", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted_run(scratch: Path, scratch_config: Path) -> None:
    out = scratch_config.parent / "killed"
    checkpoints = out.with_name(out.name + ".partial") / "trainer"
    proc = _cli("pretrain", str(scratch_config), "-o", str(out), "--no-progress")
    kill_at_checkpoint(proc, checkpoints, 12, "pretraining", poll=0.02)
    assert not out.exists()
    resumed = _cli("pretrain", str(scratch_config), "-o", str(out), "--resume", "--no-progress")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "resumed at step" in (out / "train.log").read_text(encoding="utf-8")
    assert _record(out)["final_eval_loss"] == _record(scratch)["final_eval_loss"]
    assert (out / "model.safetensors").read_bytes() == (scratch / "model.safetensors").read_bytes()
    assert _steps(out) == [0, 10, 20, 30, 40]  # nothing logged twice
    assert (
        f"eval MLM loss {_record(out)['final_eval_loss']:.4f}" in stdout
        and f"wrote {out}" in stdout
    )


def test_resume_with_another_config_is_refused(tmp_path: Path, scratch_config: Path) -> None:
    from naba.config import save_config
    from naba.train.pretrain import TrainingError, pretrain

    work = tmp_path / "enc.partial"
    work.mkdir()
    save_config(load_pretrain_config(scratch_config), work / "config.yaml")
    with pytest.raises(
        TrainingError,
        match=re.escape(
            f"{work}: was started with another config (differs in train.seed); resume with the "
            "same config and --set options, or pass --overwrite to start again"
        ),
    ):
        pretrain(
            load_pretrain_config(scratch_config, ["train.seed=14"]), tmp_path / "enc", resume=True
        )


# ----------------------------------------------------------------------------- from an encoder


def test_mlm_head_decoder_is_tied_to_the_embeddings(tiny_encoder: Path) -> None:
    from naba.train.mlm_model import load_mlm_model

    model, tokenizer, new = load_mlm_model(tiny_encoder)
    decoder, embeddings = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert decoder is embeddings and decoder.data_ptr() == embeddings.data_ptr()
    assert model.config.tie_word_embeddings
    assert (
        "cls.predictions.transform.dense.weight" in new
        and "cls.predictions.decoder.weight" not in new
    )


def test_masked_only_loss_equals_the_models_own_loss(tiny_encoder: Path) -> None:
    import torch

    from naba.train.mlm_data import mask_tokens
    from naba.train.mlm_model import load_mlm_model, masked_lm_loss

    model, tokenizer, _ = load_mlm_model(tiny_encoder)
    model.eval()
    blocks = np.random.default_rng(0).integers(5, len(tokenizer), size=(4, 48)).astype(np.int32)
    inputs, labels = (
        torch.from_numpy(a)
        for a in mask_tokens(
            blocks,
            np.random.default_rng(1),
            0.15,
            tokenizer.mask_token_id,
            len(tokenizer),
            [0, 1, 2, 3, 4],
        )
    )
    attention = torch.ones_like(inputs)
    with torch.no_grad():
        expected = model(input_ids=inputs, attention_mask=attention, labels=labels).loss
        assert masked_lm_loss(model)(inputs, attention, labels).item() == pytest.approx(
            expected.item(), abs=1e-5
        )


@pytest.fixture(scope="module")
def xlmr_encoder(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Path:
    """Like the converted e5-small: an ``XLMRobertaModel`` without pooler or MLM
    head, tie_word_embeddings off."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("encoders") / "xlmr"
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def test_headless_xlm_roberta_gets_a_tied_lm_head(xlmr_encoder: Path) -> None:
    from naba.train.mlm_model import load_mlm_model

    model, _, new = load_mlm_model(xlmr_encoder)
    assert type(model).__name__ == "XLMRobertaForMaskedLM"
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight
    assert (
        model.lm_head.decoder.weight.data_ptr()
        == model.roberta.embeddings.word_embeddings.weight.data_ptr()
    )
    assert {"lm_head.dense.weight", "lm_head.bias"} <= set(new)


def test_new_head_learns_at_head_learning_rate_the_encoder_at_learning_rate(
    xlmr_encoder: Path, tmp_path: Path
) -> None:
    from naba.train.mlm_model import load_mlm_model
    from naba.train.pretrain import _optimizer

    model, _, new = load_mlm_model(xlmr_encoder)
    config = load_pretrain_config(
        write_pretrain_config(
            tmp_path / "cfg.yaml",
            model={"base": str(xlmr_encoder)},
            train={"learning_rate": 1e-5, "head_learning_rate": 1e-3},
        )
    )
    names = {id(p): n for n, p in model.named_parameters()}
    rates = {
        names[id(p)]: group["lr"]
        for group in _optimizer(model, config, new).param_groups
        for p in group["params"]
    }
    assert set(rates) == set(
        names.values()
    )  # every parameter once, the tied decoder as the embeddings
    head = {n for n in rates if n in new}
    assert head and all(n.startswith("lm_head.") for n in head)
    assert {rates[n] for n in head} == {1e-3}
    assert {rates[n] for n in rates if n not in head} == {1e-5}
    unset = load_pretrain_config(
        write_pretrain_config(
            tmp_path / "plain.yaml",
            model={"base": str(xlmr_encoder)},
            train={"learning_rate": 1e-5},
        )
    )
    assert {group["lr"] for group in _optimizer(model, unset, new).param_groups} == {1e-5}


def test_continue_from_xlm_roberta_keeps_the_architecture(
    tmp_path: Path, xlmr_encoder: Path
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModel

    from naba.train.pretrain import pretrain

    config = write_pretrain_config(
        tmp_path / "cfg.yaml",
        model={"base": str(xlmr_encoder)},
        train={"max_steps": 2, "eval_every": 2, "checkpoint_every": None},
        corpus={"max_texts": 60},
    )
    out = pretrain(load_pretrain_config(config), show_progress_bar=False)
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert type(model).__name__ == "XLMRobertaModel"
    before, after = (
        load_file(str(xlmr_encoder / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    assert set(after) == set(before)  # no head, no pooler added
    assert not np.allclose(
        before["embeddings.word_embeddings.weight"].numpy(),
        after["embeddings.word_embeddings.weight"].numpy(),
    )


def test_continue_from_tiny_encoder_then_fine_tune(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path]
) -> None:
    from safetensors.torch import load_file

    from naba.config import load_config
    from naba.manifest import read_manifest
    from naba.train.pretrain import pretrain
    from naba.train.trainer import train

    config = write_pretrain_config(
        tmp_path / "cfg.yaml",
        model={"base": str(tiny_encoder)},
        train={"max_steps": 3, "eval_every": 3, "checkpoint_every": None},
        corpus={"max_texts": 80},
    )
    encoder = pretrain(load_pretrain_config(config), tmp_path / "adapted", show_progress_bar=False)
    record = _record(encoder)
    assert (
        record["base_model"] == str(tiny_encoder)
        and record["steps"] == 3
        and record["corpus"]["texts"] == 80
    )
    source, adapted = (
        load_file(str(tiny_encoder / "model.safetensors")),
        load_file(str(encoder / "model.safetensors")),
    )
    assert set(adapted) == set(source)
    assert np.array_equal(
        adapted["pooler.dense.weight"].numpy(), source["pooler.dense.weight"].numpy()
    )  # carried over

    cfg = load_config(
        write_config(
            tmp_path / "train.yaml",
            encoder,
            task_paths(small_data, "single"),
            train={"max_steps": 2},
        )
    )
    model = train(cfg, tmp_path / "model", show_progress_bar=False)
    assert read_manifest(model).base_model == str(encoder)


# ---------------------------------------------------------------------------- config and CLI errors


def test_shipped_pretrain_configs_load() -> None:
    scratch = load_pretrain_config(ROOT / "configs" / "pretrain-scratch.yaml")
    assert scratch.model.base is None and scratch.corpus.files == [
        Path("data/sample/articles.jsonl")
    ]
    assert scratch.train.max_steps == 50
    adapt = load_pretrain_config(ROOT / "configs" / "pretrain-saudi-news.yaml")
    assert adapt.model.base == "runs/encoders/e5-ant" and adapt.train.max_steps == 300
    assert [p.name for p in adapt.corpus.files] == [f"corpus_{i:03d}.txt.gz" for i in range(15)]


def test_misspelt_key_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    config = write_pretrain_config(tmp_path / "cfg.yaml", train={"learnin_rate": 0.1})
    with pytest.raises(ConfigError) as caught:
        load_pretrain_config(config)
    assert (
        str(caught.value)
        == f"{config}: train.learnin_rate: unknown key (did you mean 'learning_rate'?)"
    )


def test_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    missing.write_text("train: {max_steps: 5}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: corpus: required key is missing")):
        load_pretrain_config(missing)
    config = write_pretrain_config(tmp_path / "cfg.yaml")
    with pytest.raises(
        ConfigError,
        match=Elided(
            f"{config} (with --set overrides): train.mlm_probability: …less than 1 (found 1.5)"
        ).pattern,
    ):
        load_pretrain_config(config, ["train.mlm_probability=1.5"])
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{config} (with --set overrides): model.from_scratch.hiden: "
            "unknown key (did you mean 'hidden'?)"
        ),
    ):
        load_pretrain_config(config, ["model.from_scratch.hiden=64"])
    cfg = load_pretrain_config(
        config, ["train.learning_rate=2e-5", "model.base=runs/encoders/e5-ant"]
    )
    assert cfg.train.learning_rate == 2e-5 and cfg.model.base == "runs/encoders/e5-ant"


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    config = write_pretrain_config(tmp_path / "cfg.yaml", train={"learnin_rate": 0.1})
    result = CliRunner().invoke(app, ["pretrain", str(config)])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"error: {config}: train.learnin_rate: unknown key (did you mean 'learning_rate'?)"
    )

    absent = tmp_path / "nope.txt"
    config = write_pretrain_config(tmp_path / "cfg2.yaml", corpus={"files": [str(absent)]})
    result = CliRunner().invoke(
        app, ["pretrain", str(config), "-o", str(tmp_path / "enc"), "--no-progress"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {absent}: corpus file not found"

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    config = write_pretrain_config(tmp_path / "cfg3.yaml", corpus={"files": [str(empty)]})
    result = CliRunner().invoke(
        app, ["pretrain", str(config), "-o", str(tmp_path / "enc"), "--no-progress"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {empty}: 0 text(s) after normalisation; "
        "need at least 2 (to train on and to evaluate on)"
    )

    (tmp_path / "exists").mkdir()
    result = CliRunner().invoke(app, ["pretrain", str(config), "-o", str(tmp_path / "exists")])
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output


@pytest.mark.slow
def test_two_process_ddp_pretraining_writes_an_encoder(
    tmp_path: Path, scratch_config: Path
) -> None:
    """Under DDP the loss goes through the wrapped model (gradients synchronise); the
    output is an ordinary encoder."""
    config = write_pretrain_config(
        tmp_path / "ddp.yaml", train={"max_steps": 4, "eval_every": 2, "checkpoint_every": None}
    )
    out = tmp_path / "encoder"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29534",
            "-m",
            "naba",
            "-q",
            "pretrain",
            str(config),
            "-o",
            str(out),
            "--no-progress",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _steps(out) == [0, 2, 4]
    assert (
        _record(out)["tokens_seen"] == 4 * 2 * 8 * 64
    )  # 4 steps, 2 processes, 8 blocks of 64 tokens each
    from transformers import AutoModel

    assert AutoModel.from_pretrained(out).config.hidden_size == 32
