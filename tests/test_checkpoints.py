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
