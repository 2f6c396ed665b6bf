"""The MLM model: an encoder with a masked-language-model head (tied to its embeddings when new),
and its loss."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import PretrainConfig
from naba.encoder.build import build_bert
from naba.hub import load_kwargs, unreachable
from naba.train.engine import TrainingError
from naba.train.mlm_data import IGNORE_INDEX

logger = logging.getLogger(__name__)


def build_scratch_encoder(train_texts: list[str], config: PretrainConfig, directory: Path) -> Path:
    """A WordPiece vocabulary trained on ``train_texts`` and a BERT initialised from
    ``train.seed`` (as ``naba encoder tiny``)."""
    shape = config.model.from_scratch
    vocabulary = build_bert(
        train_texts,
        directory,
        layers=shape.layers,
        hidden=shape.hidden,
        heads=shape.heads,
        vocab_size=shape.vocab_size,
        max_positions=shape.max_positions,
        seed=config.train.seed,
        overwrite=True,
    )
    logger.info(
        "built a BERT from scratch (%d layers, hidden %d, vocabulary %d)",
        shape.layers,
        shape.hidden,
        vocabulary,
    )
    return directory


def load_mlm_model(
    source: str | Path, allow_pickle: bool = False, seed: int = 13
) -> tuple[Any, Any, list[str]]:
    """An encoder with a masked-language-model head, its tokenizer, and the parameters that were
    newly initialised.

    A checkpoint without a head (``BertModel``, ``XLMRobertaModel``: the
    converted e5-small) gets a head initialised from ``seed`` whose decoder is
    the word-embedding matrix itself (tied), as in BERT and XLM-R
    pretraining. A checkpoint that ships its own untied decoder keeps it.

    Args:
        source: Encoder directory or hub id.
        allow_pickle: Allow pickle (``.bin``) weights.
        seed: Seeds the new head's initial weights.

    Returns:
        ``(model, tokenizer, newly_initialised)``.

    Raises:
        ModelDirError: the source cannot be loaded.
        TrainingError: no fast tokenizer, no mask token, or the decoder cannot be tied.
    """
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    source = str(source)
    kwargs = load_kwargs(source, allow_pickle)
    torch.manual_seed(seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        model, info = AutoModelForMaskedLM.from_pretrained(
            source, output_loading_info=True, **kwargs
        )
    except (OSError, ValueError) as exc:
        raise unreachable(source, exc) from None
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(
            f"{source}: needs a fast (Rust) tokenizer; found {type(tokenizer).__name__}"
        )
    if tokenizer.mask_token_id is None:
        raise TrainingError(
            f"{source}: the tokenizer has no mask token; masked-language-model training needs one"
        )
    new = sorted(info.get("missing_keys", ()))
    decoder = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    if decoder is None or embeddings is None:
        raise TrainingError(
            f"{source}: {type(model).__name__} exposes no input/output embeddings to tie"
        )
    decoder_names = [
        n for n, p in model.named_parameters(remove_duplicate=False) if p is decoder.weight
    ]
    loaded_untied = decoder.weight is not embeddings.weight and not any(
        n in new for n in decoder_names
    )
    if loaded_untied and not model.config.tie_word_embeddings:
        logger.info("%s: keeping the checkpoint's own (untied) MLM decoder", source)
    else:
        # a new decoder would be a random vocabulary-sized matrix: tie it to the embeddings instead
        model.config.tie_word_embeddings = True
        model.tie_weights()
        if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
            raise TrainingError(f"{source}: could not tie the MLM decoder to the word embeddings")
    if len(tokenizer) > model.config.vocab_size:
        raise TrainingError(
            f"{source}: the tokenizer has {len(tokenizer)} tokens but the model only "
            f"{model.config.vocab_size} embeddings"
        )
    return model, tokenizer, new


def _source_pooler(source: str, allow_pickle: bool) -> dict[str, Any]:
    """The source checkpoint's pooler weights, if it has trained ones (MLM models are built
    without a pooler)."""
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(
        source, output_loading_info=True, **load_kwargs(source, allow_pickle)
    )
    pooler = getattr(model, "pooler", None)
    if pooler is None or any(k.startswith("pooler.") for k in info.get("missing_keys", ())):
        return {}
    return {f"pooler.{k}": v.detach().clone() for k, v in pooler.state_dict().items()}


def held_out_loss(
    model: Any,
    inputs: np.ndarray,
    labels: np.ndarray,
    attention: np.ndarray,
    batch_size: int,
    device: Any,
) -> float:
    """Mean cross-entropy over every masked held-out token (not a mean of batch means)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for first in range(0, len(inputs), batch_size):
            batch_labels = labels[first : first + batch_size]
            n = int((batch_labels != IGNORE_INDEX).sum())
            if not n:
                continue
            loss = model(
                torch.from_numpy(inputs[first : first + batch_size]).to(device),
                torch.from_numpy(attention[first : first + batch_size]).to(device),
                torch.from_numpy(batch_labels).to(device),
            )
            total += loss.item() * n
            count += n
    model.train()
    return total / max(count, 1)


def masked_lm_loss(model: Any) -> Any:
    """A module computing the MLM loss of ``model`` with the vocabulary projection only at masked
    positions.

    Transformers' MLM models project every position onto the vocabulary
    (16 x 128 x 24k logits for e5-small) and then ignore the 85% that are not
    masked; projecting only the masked positions gives the same loss for
    about a quarter less compute. Works for models whose children are the
    base model and one head taking hidden states (BERT, RoBERTa, XLM-R);
    others fall back to the model's own loss. The module is what
    ``accelerator.prepare`` wraps, so gradients synchronise across processes.

    Args:
        model: An ``AutoModelForMaskedLM`` model.

    Returns:
        A ``torch.nn.Module``: ``module(input_ids, attention_mask, labels)`` is the mean
            cross-entropy over
        positions whose label is not -100; ``module.mlm`` is ``model``.
    """
    import torch

    base_name = model.base_model_prefix
    others = [name for name, _ in model.named_children() if name != base_name]
    head_name = others[0] if len(others) == 1 and hasattr(model, base_name) else None

    class MaskedLMLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlm = model

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any) -> Any:
            if head_name is None:
                return self.mlm(
                    input_ids=input_ids, attention_mask=attention_mask, labels=labels
                ).loss
            hidden = getattr(self.mlm, base_name)(
                input_ids=input_ids, attention_mask=attention_mask
            )[0]
            picked = labels != IGNORE_INDEX
            logits = getattr(self.mlm, head_name)(hidden[picked])
            return torch.nn.functional.cross_entropy(logits.float(), labels[picked])

        def save_pretrained(self, *args: Any, **kwargs: Any) -> Any:
            # checkpoints (checkpoints.save_checkpoint) save the MLM model itself
            return self.mlm.save_pretrained(*args, **kwargs)

    return MaskedLMLoss()


def perplexity(loss: float | None) -> float | None:
    """``exp(loss)``, capped so that a diverged run still writes valid JSON."""
    return None if loss is None else math.exp(min(loss, 50.0))
