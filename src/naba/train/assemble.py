"""The model directory: every task's ``final/``, the manifest, the cards and the run's records.

Built next to ``OUT`` and renamed into place in one step, by ``naba train``
(:func:`naba.train.trainer.train`) and ``naba distill``
(:func:`naba.train.distill.distill`) alike.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from naba.config import NabaConfig
from naba.manifest import (
    FORMAT_VERSION,
    Manifest,
    TaskManifest,
    library_versions,
    write_decision_rule,
    write_manifest,
)


def assemble(
    config: NabaConfig,
    entries: dict[str, dict[str, Any]],
    work: Path,
    out: Path,
    searched: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Build the final directory next to ``out`` and rename it into place.

    ``searched``: the hyperparameter search's record; ``extra``: more manifest fields.
    """
    from naba import __version__
    from naba.atomic import atomic_dir
    from naba.train.card import model_card, task_card

    data = {task: entry.pop("data") for task, entry in entries.items()}
    fields: dict[str, Any] = {
        "base_model": config.model.base,
        **({"search": searched} if searched is not None else {}),
        **(extra or {}),
    }
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        naba_version=__version__,
        normalization=config.normalization,
        window=config.model.window,
        tasks={t: TaskManifest.model_validate(e) for t, e in entries.items()},
        data=data,
        training_config=config.to_dict(),
        versions=library_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **fields,
    )
    with atomic_dir(out, overwrite=True) as tmp:
        for task in entries:
            shutil.copytree(work / task / "final", tmp / task)
            for events in (work / task / "trainer").glob("runs/*"):  # report_to: tensorboard
                shutil.copytree(events, tmp / "logs" / task / events.name)
        write_manifest(manifest, tmp)
        for name, spec in manifest.tasks.items():
            write_decision_rule(spec, tmp / spec.path)
            (tmp / spec.path / "README.md").write_text(task_card(manifest, name), encoding="utf-8")
        (tmp / "README.md").write_text(model_card(manifest), encoding="utf-8")
        shutil.copy(work / "config.yaml", tmp / "config.yaml")
        with (
            open(tmp / "metrics.jsonl", "w", encoding="utf-8") as metrics,
            open(tmp / "train.log", "w", encoding="utf-8") as logf,
        ):
            for task in entries:
                for name, handle in (("metrics.jsonl", metrics), ("train.log", logf)):
                    source = work / task / name
                    if source.exists():
                        handle.write(source.read_text(encoding="utf-8"))
    shutil.rmtree(work, ignore_errors=True)
