"""Checkpoint swaps that a kill interrupted are finished on resume."""


def test_an_interrupted_checkpoint_swap_is_recovered(tmp_path):
    from naba.train.checkpoints import recover_checkpoint

    checkpoint = tmp_path / "checkpoint"
    # killed between the two renames: the previous checkpoint is NAME.old, the complete new one NAME.tmp
    for name, step in (("checkpoint.old", 3), ("checkpoint.tmp", 4)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "progress.json").write_text(f'{{"step": {step}}}', encoding="utf-8")
    assert recover_checkpoint(checkpoint)
    assert (checkpoint / "progress.json").read_text(encoding="utf-8") == '{"step": 4}'


def test_a_half_written_new_checkpoint_falls_back_to_the_previous_one(tmp_path):
    from naba.train.checkpoints import recover_checkpoint

    checkpoint = tmp_path / "checkpoint"
    (tmp_path / "checkpoint.old").mkdir()
    (tmp_path / "checkpoint.old" / "progress.json").write_text('{"step": 3}', encoding="utf-8")
    (tmp_path / "checkpoint.tmp").mkdir()  # no progress.json: the write was cut short
    assert recover_checkpoint(checkpoint)
    assert (checkpoint / "progress.json").read_text(encoding="utf-8") == '{"step": 3}'
    assert not recover_checkpoint(tmp_path / "nothing")


def _padding(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_cover_the_epoch_with_less_padding():
    import numpy as np

    from naba.train.checkpoints import GROUP_SPAN, epoch_batches

    n, size = 1000, 8
    lengths = np.random.default_rng(0).integers(5, 300, n).tolist()
    plain = epoch_batches(n, size, seed=13, epoch=0, world=1)
    grouped = epoch_batches(n, size, seed=13, epoch=0, world=1, lengths=lengths)
    assert sorted(i for b in grouped for i in b) == list(range(n))  # every article once
    assert len(grouped) == len(plain) == 125
    assert _padding(grouped, lengths) < _padding(plain, lengths) / 5
    assert grouped == epoch_batches(n, size, seed=13, epoch=0, world=1, lengths=lengths)  # reruns and resumes agree
    assert grouped != epoch_batches(n, size, seed=13, epoch=1, world=1, lengths=lengths)
    # the batches are shuffled, not served shortest first
    firsts = [min(lengths[i] for i in b) for b in grouped[:GROUP_SPAN]]
    assert firsts != sorted(firsts)


def test_length_grouping_keeps_the_process_padding():
    from naba.train.checkpoints import epoch_batches

    batches = epoch_batches(10, 4, seed=1, epoch=0, world=2, lengths=list(range(10)))
    assert len(batches) == 4 and sorted(i for b in batches[:3] for i in b) == list(range(10))
    assert batches[3] == batches[0]
