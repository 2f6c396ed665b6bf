"""Resumable checkpoints and the batch order they replay: Trainer's
checkpoint-N, naba's epoch batches."""

from __future__ import annotations

from pathlib import Path


def test_resume_takes_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    from naba.train.engine import last_checkpoint

    assert last_checkpoint(tmp_path / "nothing") is None
    for step, complete in (
        (4, True),
        (8, True),
        (12, False),
    ):  # a kill while checkpoint-12 was being written
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"")
        if complete:  # Trainer writes trainer_state.json last
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(
                "{}", encoding="utf-8"
            )
    (tmp_path / "checkpoint-tmp").mkdir()
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-8"


def _padding(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_cover_the_epoch_with_less_padding():
    import numpy as np

    from naba.train.engine import GROUP_SPAN, epoch_batches

    n, size = 1000, 8
    lengths = np.random.default_rng(0).integers(5, 300, n).tolist()
    plain = epoch_batches(n, size, seed=13, epoch=0, world=1)
    grouped = epoch_batches(n, size, seed=13, epoch=0, world=1, lengths=lengths)
    assert sorted(i for b in grouped for i in b) == list(range(n))  # every article once
    assert len(grouped) == len(plain) == 125
    assert _padding(grouped, lengths) < _padding(plain, lengths) / 5
    assert grouped == epoch_batches(
        n, size, seed=13, epoch=0, world=1, lengths=lengths
    )  # reruns and resumes agree
    assert grouped != epoch_batches(n, size, seed=13, epoch=1, world=1, lengths=lengths)
    # the batches are shuffled, not served shortest first
    firsts = [min(lengths[i] for i in b) for b in grouped[:GROUP_SPAN]]
    assert firsts != sorted(firsts)


def test_length_grouping_keeps_the_process_padding():
    from naba.train.engine import epoch_batches

    batches = epoch_batches(10, 4, seed=1, epoch=0, world=2, lengths=list(range(10)))
    assert len(batches) == 4 and sorted(i for b in batches[:3] for i in b) == list(range(10))
    assert batches[3] == batches[0]
