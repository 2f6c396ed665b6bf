"""``--precision auto`` decides int8 on the Wilson lower bound of the dev agreement, not on the
point estimate; gradient checkpointing is planned from the memory there is."""

from __future__ import annotations

import logging
import re

import pytest

from naba.infer.precision import evidence, justified, smallest_dev, too_small_note, wilson_lower
from naba.manifest import TaskManifest


@pytest.mark.parametrize(
    ("agreed", "n", "lower"),
    [
        (35, 35, 0.9011),  # the quickstart's topics: all 35 agreed
        (0, 10, 0.0),
        (995, 1000, 0.9884),
        (4990, 5000, 0.9963),
        (0, 0, 0.0),
    ],
)
def test_wilson_lower_bound(agreed: int, n: int, lower: float) -> None:
    assert wilson_lower(agreed, n) == pytest.approx(lower, abs=1e-4)
    assert wilson_lower(agreed, n) <= (agreed / n if n else 0.0)


def test_the_smallest_dev_set_that_can_vouch_for_int8() -> None:
    n = smallest_dev()
    assert n == 381
    assert justified(evidence(1.0, n)) and not justified(evidence(1.0, n - 1))
    # one disagreement needs a larger set than none
    assert not justified(evidence((n - 1) / n, n))


def _spec(agreement: float | None, n: int | None) -> TaskManifest:
    return TaskManifest(
        task="topic",
        path="topic",
        labels=["a", "b"],
        multi_label=False,
        precision_agreement={} if agreement is None else {"int8": agreement},
        precision_evidence={} if n is None else {"int8": evidence(agreement, n)},
    )


@pytest.mark.parametrize(
    ("agreement", "n", "auto", "int8"),
    [
        (1.0, 35, "fp32", "int8"),  # all agreed, too few to vouch for it
        (1.0, 400, "int8", "int8"),
        (0.996, 600, "fp32", "int8"),  # 99.6% of 600: lower bound 98.5%
        (0.996, 5000, "int8", "int8"),
        (0.953, 600, "fp32", "fp32"),  # measured disagreement: fp32 even when int8 is asked for
        (0.995, None, "fp32", "int8"),  # an older model: no dev size, auto stays fp32
        (None, None, "fp32", "int8"),  # nothing recorded: int8 runs unchecked when asked for
    ],
)
def test_task_precision_reads_the_lower_bound(agreement, n, auto: str, int8: str) -> None:
    from naba.infer.task_model import task_precision

    spec = _spec(agreement, n)
    assert task_precision(spec, "auto") == auto
    assert task_precision(spec, "int8") == int8
    assert task_precision(spec, "fp32") == "fp32"


def test_the_log_says_when_a_dev_set_is_too_small(caplog: pytest.LogCaptureFixture) -> None:
    from naba.infer.task_model import task_precision

    with caplog.at_level(logging.INFO, logger="naba"):
        task_precision(_spec(1.0, 35), "auto")
    assert (
        "topic: int8 agreed with fp32 on 100.0% of 35 dev articles, 95% lower bound 90.1%: "
        "the dev set is too small to justify int8 under --precision auto (all of at least 381 "
        "dev articles must agree for a 99% lower bound); it runs in fp32"
    ) in caplog.text
    assert (
        too_small_note("topic", "int8", evidence(0.95, 35)) is None
    )  # it disagreed: not a size issue
    assert too_small_note("topic", "int8", evidence(1.0, 400)) is None


def test_training_records_the_bound_and_the_dev_size(trained_model) -> None:
    import json

    manifest = json.loads((trained_model / "naba.json").read_text(encoding="utf-8"))
    for task in manifest["tasks"].values():
        record = task["precision_evidence"]["int8"]
        assert record["agreement"] == task["precision_agreement"]["int8"]
        assert record["dev_size"] >= 24
        assert record["lower_bound"] == pytest.approx(
            wilson_lower(round(record["agreement"] * record["dev_size"]), record["dev_size"]),
            abs=1e-4,
        )
    log = (trained_model / "train.log").read_text(encoding="utf-8")
    assert re.search(
        r"topic: int8 agrees with fp32 on [\d.]+% of \d+ dev articles, 95% lower bound", log
    )
    assert re.search(
        r"topic: gradient checkpointing (on|off) \(auto: batches of up to [\d,]+ tokens", log
    )
    if manifest["tasks"]["topic"]["precision_agreement"]["int8"] >= 0.99:
        assert "the dev set is too small to justify int8" in log


def test_checkpointing_is_planned_from_the_memory_there_is(tiny_encoder) -> None:
    from transformers import AutoModelForSequenceClassification

    from naba.train.memory import HEADROOM, peak_estimate, plan_checkpointing

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3)
    tokens = 16 * 2 * 256
    need = peak_estimate(tokens, model, 256)

    def plan(setting, available):
        return plan_checkpointing(setting, tokens, model, length=256, available=available)

    roomy = plan("auto", int(need / HEADROOM) + 10**6)
    assert not roomy.on
    assert roomy.reason.startswith(f"auto: batches of up to {tokens:,} tokens need ~")
    assert "less than 80% of the" in roomy.reason and "RAM available" in roomy.reason
    tight = plan("auto", int(need / HEADROOM) - 10**6)
    assert tight.on and "more than 80%" in tight.reason
    assert plan(True, 10**12).on and plan(True, 10**12).reason == "asked for"
    assert not plan(False, 1).on
    # more tokens, or the same tokens in longer windows, need more memory
    assert peak_estimate(2 * tokens, model, 256) > need
    assert peak_estimate(tokens, model, 512) > need


def test_checkpointing_without_a_memory_figure_is_cautious(
    tiny_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForSequenceClassification

    from naba.train import memory

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: None)
    plan = memory.plan_checkpointing("auto", 2048, model, length=128)
    assert plan.on and plan.reason.startswith("auto: the RAM available cannot be read")


def test_checkpointing_shares_the_memory_among_local_processes(
    tiny_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForSequenceClassification

    from naba.train.memory import HEADROOM, peak_estimate, plan_checkpointing

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3)
    need = peak_estimate(4096, model, 256)
    free = int(1.5 * need / HEADROOM)  # holds one process, not two
    assert not plan_checkpointing("auto", 4096, model, length=256, available=free).on
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    shared = plan_checkpointing("auto", 4096, model, length=256, available=free)
    assert shared.on and "(2 processes share" in shared.reason


def test_available_memory_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from naba.train.memory import available_bytes

    assert available_bytes() > 0
    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    assert available_bytes() > 0  # /proc/meminfo
