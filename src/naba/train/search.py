"""``naba train --search N``: Optuna over learning rate, epochs, batch size and window length, on
dev.

Each trial is a whole ``naba train`` run (every task of the config, the
encoder alone: the hybrid is fitted once, on the final model) into a scratch
directory; its score is the mean dev macro-F1 over the tasks. The best
trial's settings then train the model, and the search (every trial's
settings and score) is recorded in the manifest.

Why not ``Trainer.hyperparameter_search``: it tunes ``TrainingArguments``
of one ``Trainer``, while a naba run is one ``Trainer`` per task, and the
window length changes how the articles are tokenised, before any
``Trainer`` exists. The trials still run on the same engine.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from naba.config import NabaConfig
from naba.errors import NabaError

logger = logging.getLogger(__name__)

BATCH_SIZES = (8, 16, 32)
MAX_WINDOW = 512  # the position limit of BERT-class encoders


class SearchError(NabaError):
    """The search cannot run (optuna missing, no trial finished)."""


def _space(config: NabaConfig) -> dict[str, Any]:
    """The ranges searched, around the config's own values."""
    lr, epochs, length = config.train.learning_rate, config.train.epochs, config.model.window.length
    return {
        "learning_rate": (lr / 4, lr * 4),
        "epochs": (max(1.0, epochs / 2), epochs * 2),
        "batch_size": BATCH_SIZES,
        "window_length": tuple(sorted({max(32, length // 2), length, min(2 * length, MAX_WINDOW)})),
    }


def suggest(trial: Any, config: NabaConfig) -> dict[str, Any]:
    """One trial's settings, drawn by Optuna from :func:`_space`."""
    space = _space(config)
    return {
        "learning_rate": trial.suggest_float("learning_rate", *space["learning_rate"], log=True),
        "epochs": trial.suggest_int(
            "epochs", int(space["epochs"][0]), int(round(space["epochs"][1]))
        ),
        "batch_size": trial.suggest_categorical("batch_size", list(space["batch_size"])),
        "window_length": trial.suggest_categorical("window_length", list(space["window_length"])),
    }


def apply_params(config: NabaConfig, params: dict[str, Any]) -> NabaConfig:
    """``config`` with a trial's settings (every task trains that many epochs)."""
    data = config.to_dict()
    data["train"].update(
        learning_rate=params["learning_rate"],
        epochs=params["epochs"],
        batch_size=params["batch_size"],
    )
    for task in ("topic", "stance"):
        if data["tasks"].get(task):
            data["tasks"][task]["epochs"] = None
    window = data["model"]["window"]
    window["length"] = params["window_length"]
    window["stride"] = min(
        window["stride"], params["window_length"] // 4
    )  # must stay under half a window
    return NabaConfig.model_validate(data)


def search(
    config: NabaConfig, trials: int, scratch: Path, train: Callable[..., Path]
) -> dict[str, Any]:
    """Run ``trials`` Optuna trials (TPE, seeded with ``config.seed``); return the search record.

    ``train`` is :func:`naba.train.trainer.train` (passed in: the trainer calls the search, not the
    reverse).

    The record: ``{"trials": [{"number", "params", "dev_macro_f1"}...], "best": {...}, "objective":
        ...}``.
    ``scratch`` holds one trial's model at a time and is removed at the end.

    Raises:
        SearchError: optuna is not installed.
    """
    try:
        import optuna
    except ImportError:
        raise SearchError("--search needs optuna: pip install 'naba[search]'") from None
    from naba.manifest import read_manifest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = suggest(trial, config)
        trial_config = apply_params(config, params)  # a new config: the caller's is untouched
        trial_config.model.hybrid = False
        out = scratch / f"trial-{trial.number}"
        shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
        model = train(trial_config, out, overwrite=True, show_progress_bar=False)
        scores = {
            name: spec.metrics["dev"]["macro_f1"]
            for name, spec in read_manifest(model).tasks.items()
        }
        shutil.rmtree(model, ignore_errors=True)
        score = sum(scores.values()) / len(scores)
        done.append(
            {
                "number": trial.number,
                "params": params,
                "dev_macro_f1": round(score, 4),
                "per_task": {k: round(v, 4) for k, v in scores.items()},
            }
        )
        logger.info(
            "search trial %d/%d: %s -> dev macro-F1 %.4f",
            trial.number + 1,
            trials,
            json.dumps(params),
            score,
        )
        return score

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed)
    )
    try:
        study.optimize(objective, n_trials=trials)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    best = max(done, key=lambda t: t["dev_macro_f1"])
    return {
        "objective": "mean dev macro-F1 over the tasks (encoder alone)",
        "sampler": "optuna TPE",
        "seed": config.seed,
        "space": {k: list(v) for k, v in _space(config).items()},
        "trials": done,
        "best": best,
    }
