"""Masked-language-model pretraining on unlabelled text: ``naba pretrain CONFIG``.

Two starting points:

- **domain adaptation**: continue from an encoder directory (``model.base``),
  e.g. the converted e5-small. Such a directory usually holds the bare
  encoder without an MLM head; the head's transform is then initialised
  from the seed and its decoder is *tied* to the word embeddings, so the only
  new parameters are a small dense layer, a layer norm and a bias;
- **from scratch** (``model.base: null``): a WordPiece vocabulary is trained
  on the training texts and a BERT of the configured size is initialised
  (the shape and pipeline of ``naba encoder tiny``, with a vocabulary that
  is the same on every run).

Texts are normalised exactly as ``naba train`` normalises (the default
:class:`~naba.config.NormalizationConfig`), tokenised, concatenated with a
separator after each text and cut into blocks of ``corpus.max_length``
tokens, each ``[CLS] ... [SEP]`` (the ``group_texts`` packing of
transformers' ``run_mlm.py``). A fraction of the *texts* (not blocks) is held
out, so no held-out sentence is seen in training.

Training runs on the same engine as fine-tuning (:mod:`naba.train.engine`):
``transformers.Trainer`` (:class:`MLMTrainer`), with naba's batch order (a
function of seed and epoch), masks that are a function of (seed, epoch,
block), held-out masks drawn once, and ``Trainer``'s checkpoints (weights,
optimizer, scheduler, RNG states). A run killed at any point and resumed
from its last checkpoint ends with the same weights and losses as an
uninterrupted one.

The output is a standard encoder directory (the base model, *without* the
MLM head, as safetensors, plus the tokenizer) that ``naba train`` accepts as
``model.base``, with ``pretrain.json``, ``config.yaml``, ``metrics.jsonl``
and ``train.log`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from transformers import Trainer, TrainerCallback

from naba.config import NormalizationConfig, PretrainConfig, save_config
from naba.encoder.build import build_bert, corpus_lines
from naba.errors import InputError
from naba.hub import load_kwargs, unreachable
from naba.train.engine import EpochBatches, QuietProgress, RunLog, TrainingError, adamw, epoch_batches, last_checkpoint

logger = logging.getLogger(__name__)

PRETRAIN_FILE = "pretrain.json"
FORMAT_VERSION = 1
IGNORE_INDEX = -100  # label of a position with nothing to predict (PyTorch's cross-entropy default)


@dataclass
class PackedCorpus:
    """Token blocks ready for masking, and the facts about them that ``pretrain.json`` records."""

    train: np.ndarray  # [blocks, max_length] int32 token ids
    eval: np.ndarray
    stats: dict[str, Any]


# ----------------------------------------------------------------------------- text preparation


def split_texts(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out ``fraction`` of the texts (at least one) for evaluation; both parts keep corpus order.

    Raises:
        InputError: fewer than two texts.
    """
    if len(texts) < 2:
        raise InputError(f"the corpus has {len(texts)} text(s); need at least 2 (to train on and to evaluate on)")
    n_eval = min(len(texts) - 1, max(1, round(len(texts) * fraction)))
    held_out = set(np.random.default_rng([seed, 0]).permutation(len(texts))[:n_eval].tolist())
    return ([t for i, t in enumerate(texts) if i not in held_out], [t for i, t in enumerate(texts) if i in held_out])


def _special_layout(tokenizer: Any) -> tuple[list[int], list[int], list[int]]:
    """Token ids that open a block, close a block, and follow each text ([CLS]/[SEP] or <s>/</s>)."""
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    start = [first] if first is not None else []
    end = [last] if last is not None else []
    return start, end, end


def pack_blocks(tokenizer: Any, texts: list[str], max_length: int, batch: int = 1000) -> np.ndarray:
    """Tokenise, concatenate (a separator after each text) and cut into ``[CLS] ... [SEP]`` blocks.

    The last, partial block is dropped, unless it is the only one: then it is
    padded (the padding is masked out of attention and of the loss).

    Args:
        tokenizer: A fast tokenizer.
        texts: Normalised texts.
        max_length: Tokens per block, special tokens included.
        batch: Texts tokenised per call.

    Returns:
        An int32 array ``[blocks, max_length]`` (no rows for no text).
    """
    from tokenizers import Tokenizer

    start, end, separator = _special_layout(tokenizer)
    body = max_length - len(start) - len(end)
    # a private copy: a tokenizer.json may carry truncation or padding settings
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    sep = np.asarray(separator, dtype=np.int32)
    parts: list[np.ndarray] = []
    for first in range(0, len(texts), batch):
        for encoding in backend.encode_batch(texts[first:first + batch], add_special_tokens=False):
            parts.append(np.asarray(encoding.ids, dtype=np.int32))
            parts.append(sep)
    stream = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    n_full = len(stream) // body
    if n_full == 0 and len(stream):
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        block = np.full(max_length, pad, np.int32)
        row = np.concatenate([start, stream, end]).astype(np.int32)
        block[:len(row)] = row
        return block[None]
    chunks = stream[:n_full * body].reshape(n_full, body)
    columns = [np.full((n_full, 1), t, np.int32) for t in start] + [chunks] + [np.full((n_full, 1), t, np.int32) for t in end]
    return np.concatenate(columns, axis=1)


def mask_tokens(blocks: np.ndarray, rng: np.random.Generator, probability: float, mask_id: int, vocab_size: int,
                special_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking: pick ``probability`` of the ordinary tokens; of those 80% become the mask, 10% a random token.

    Special tokens (and padding) are never picked. At least one token is
    picked when any can be, so a batch always has a loss.

    Args:
        blocks: Token ids ``[n, length]``.
        rng: The generator that decides everything (seeded by the caller: the same seed, the same masks).
        probability: The share of tokens to predict.
        mask_id: The mask token.
        vocab_size: Random replacements are drawn from ``[0, vocab_size)``.
        special_ids: Ids never picked.

    Returns:
        ``(input_ids, labels)``, int64; ``labels`` is the original id where a prediction is asked, else -100.
    """
    candidates = ~np.isin(blocks, special_ids)
    picked = (rng.random(blocks.shape) < probability) & candidates
    if not picked.any() and candidates.any():
        flat = np.flatnonzero(candidates)
        picked.flat[flat[rng.integers(len(flat))]] = True
    labels = np.where(picked, blocks, IGNORE_INDEX).astype(np.int64)
    inputs = blocks.astype(np.int64)
    roll = rng.random(blocks.shape)
    inputs[picked & (roll < 0.8)] = mask_id
    random_token = picked & (roll >= 0.8) & (roll < 0.9)
    inputs[random_token] = rng.integers(0, vocab_size, size=int(random_token.sum()))
    return inputs, labels


def _file_digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _texts_digest(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def read_corpus(config: PretrainConfig) -> tuple[list[str], list[str], dict[str, Any]]:
    """The normalised training and held-out texts, and the corpus fingerprint.

    Raises:
        InputError: a file is missing or the files hold fewer than two texts.
    """
    files = [Path(p) for p in config.corpus.files]
    texts = list(corpus_lines(files, config.corpus.max_texts))
    if len(texts) < 2:
        raise InputError(f"{', '.join(map(str, files))}: {len(texts)} text(s) after normalisation; "
                         "need at least 2 (to train on and to evaluate on)")
    train_texts, eval_texts = split_texts(texts, config.corpus.eval_fraction, config.train.seed)
    fingerprint = {
        "files": [_file_digest(p) for p in files],
        "texts": len(texts),
        "texts_sha256": _texts_digest(texts),
        "train_texts": len(train_texts),
        "eval_texts": len(eval_texts),
        "max_texts": config.corpus.max_texts,
        "normalization": NormalizationConfig().model_dump(),
    }
    return train_texts, eval_texts, fingerprint


def pack_corpus(tokenizer: Any, train_texts: list[str], eval_texts: list[str], config: PretrainConfig,
                fingerprint: dict[str, Any]) -> PackedCorpus:
    """Pack both parts into blocks; the held-out part is capped at ``corpus.max_eval_blocks``.

    Raises:
        InputError: the training texts do not fill one block.
    """
    length = config.corpus.max_length
    train = pack_blocks(tokenizer, train_texts, length)
    held_out = pack_blocks(tokenizer, eval_texts, length)
    available = len(held_out)
    if config.corpus.max_eval_blocks is not None:
        held_out = held_out[:config.corpus.max_eval_blocks]
    if not len(train) or not len(held_out):
        raise InputError(f"{', '.join(map(str, config.corpus.files))}: too little text for blocks of {length} tokens; "
                         "add text or lower corpus.max_length")
    pad = tokenizer.pad_token_id
    stats = {**fingerprint, "max_length": length, "train_blocks": len(train), "eval_blocks": len(held_out),
             "eval_blocks_available": available, "train_tokens": int((train != pad).sum()) if pad is not None else train.size}
    return PackedCorpus(train=train, eval=held_out, stats=stats)


# ----------------------------------------------------------------------------- model


def build_scratch_encoder(train_texts: list[str], config: PretrainConfig, directory: Path) -> Path:
    """A WordPiece vocabulary trained on ``train_texts`` and a BERT initialised from ``train.seed`` (as ``naba encoder tiny``)."""
    shape = config.model.from_scratch
    vocabulary = build_bert(train_texts, directory, layers=shape.layers, hidden=shape.hidden, heads=shape.heads,
                            vocab_size=shape.vocab_size, max_positions=shape.max_positions, seed=config.train.seed,
                            overwrite=True)
    logger.info("built a BERT from scratch (%d layers, hidden %d, vocabulary %d)", shape.layers, shape.hidden, vocabulary)
    return directory


def load_mlm_model(source: str | Path, allow_pickle: bool = False, seed: int = 13) -> tuple[Any, Any, list[str]]:
    """An encoder with a masked-language-model head, its tokenizer, and the parameters that were newly initialised.

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
        model, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise unreachable(source, exc) from None
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(f"{source}: needs a fast (Rust) tokenizer; found {type(tokenizer).__name__}")
    if tokenizer.mask_token_id is None:
        raise TrainingError(f"{source}: the tokenizer has no mask token; masked-language-model training needs one")
    new = sorted(info.get("missing_keys", ()))
    decoder = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    if decoder is None or embeddings is None:
        raise TrainingError(f"{source}: {type(model).__name__} exposes no input/output embeddings to tie")
    decoder_names = [n for n, p in model.named_parameters(remove_duplicate=False) if p is decoder.weight]
    loaded_untied = decoder.weight is not embeddings.weight and not any(n in new for n in decoder_names)
    if loaded_untied and not model.config.tie_word_embeddings:
        logger.info("%s: keeping the checkpoint's own (untied) MLM decoder", source)
    else:
        # a new decoder would be a random vocabulary-sized matrix: tie it to the embeddings instead
        model.config.tie_word_embeddings = True
        model.tie_weights()
        if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
            raise TrainingError(f"{source}: could not tie the MLM decoder to the word embeddings")
    if len(tokenizer) > model.config.vocab_size:
        raise TrainingError(f"{source}: the tokenizer has {len(tokenizer)} tokens but the model only "
                            f"{model.config.vocab_size} embeddings")
    return model, tokenizer, new


def _source_pooler(source: str, allow_pickle: bool) -> dict[str, Any]:
    """The source checkpoint's pooler weights, if it has trained ones (MLM models are built without a pooler)."""
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(source, output_loading_info=True, **load_kwargs(source, allow_pickle))
    pooler = getattr(model, "pooler", None)
    if pooler is None or any(k.startswith("pooler.") for k in info.get("missing_keys", ())):
        return {}
    return {f"pooler.{k}": v.detach().clone() for k, v in pooler.state_dict().items()}


# ----------------------------------------------------------------------------- training


def _evaluate(model: Any, inputs: np.ndarray, labels: np.ndarray, attention: np.ndarray, batch_size: int,
              device: Any) -> float:
    """Mean cross-entropy over every masked held-out token (not a mean of batch means)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for first in range(0, len(inputs), batch_size):
            batch_labels = labels[first:first + batch_size]
            n = int((batch_labels != IGNORE_INDEX).sum())
            if not n:
                continue
            loss = model(torch.from_numpy(inputs[first:first + batch_size]).to(device),
                         torch.from_numpy(attention[first:first + batch_size]).to(device),
                         torch.from_numpy(batch_labels).to(device))
            total += loss.item() * n
            count += n
    model.train()
    return total / max(count, 1)


def masked_lm_loss(model: Any) -> Any:
    """A module computing the MLM loss of ``model`` with the vocabulary projection only at masked positions.

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
        A ``torch.nn.Module``: ``module(input_ids, attention_mask, labels)`` is the mean cross-entropy over
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
                return self.mlm(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            hidden = getattr(self.mlm, base_name)(input_ids=input_ids, attention_mask=attention_mask)[0]
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


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint a resumed run restarts from (they will be logged again)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(kept), encoding="utf-8")


def _optimizer(model: Any, config: PretrainConfig, new: Sequence[str] = ()) -> Any:
    """AdamW: no weight decay on biases and norms; the newly initialised head at ``train.head_learning_rate``."""
    cfg = config.train
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    fresh = set(new)
    groups = []
    # named_parameters() lists the tied decoder/embedding matrix once
    for is_new in (False, True):
        lr = (cfg.head_learning_rate or cfg.learning_rate) if is_new else cfg.learning_rate
        named = [(n, p) for n, p in model.named_parameters() if (n in fresh) == is_new]
        groups.append({"params": [p for n, p in named if not any(k in n for k in no_decay)],
                       "weight_decay": cfg.weight_decay, "lr": lr})
        groups.append({"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0, "lr": lr})
    return adamw([g for g in groups if g["params"]], cfg.learning_rate)


def pretrain(config: PretrainConfig, output: str | Path | None = None, *, resume: bool = False, overwrite: bool = False,
             show_progress_bar: bool | None = None) -> Path:
    """Train an encoder with the masked-language-model objective; write an encoder directory.

    Args:
        config: The validated pretraining config.
        output: The encoder directory to write (default: ``config.output_dir``).
        resume: Continue from the checkpoint in ``OUTPUT.partial/``.
        overwrite: Replace an existing directory.
        show_progress_bar: A progress bar (default: on, main process only).

    Returns:
        The directory: ``config.json`` and ``model.safetensors`` of the base
        encoder (no MLM head), tokenizer files, ``pretrain.json`` (steps,
        held-out MLM loss and perplexity, corpus fingerprint, config),
        ``config.yaml``, ``metrics.jsonl``, ``train.log``.

    Raises:
        FileExistsError: the output exists and ``overwrite`` is not set.
        InputError: a corpus file is missing, or the corpus is too small.
        ModelDirError: the base encoder cannot be loaded.
        TrainingError: the loss diverged, or the interrupted run had another config.

    Example:
        >>> from naba.config import load_pretrain_config
        >>> pretrain(load_pretrain_config("configs/pretrain-scratch.yaml"))  # doctest: +SKIP
        PosixPath('runs/encoders/scratch')
    """
    import torch
    from accelerate import PartialState
    from transformers import TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    cfg = config.train
    out = Path(output or config.output_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    if config.model.base is None and config.corpus.max_length > config.model.from_scratch.max_positions:
        raise TrainingError(f"corpus.max_length ({config.corpus.max_length}) exceeds model.from_scratch.max_positions "
                            f"({config.model.from_scratch.max_positions})")
    work = out.with_name(out.name + ".partial")
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    state = PartialState(cpu=not torch.cuda.is_available())
    main = state.is_main_process
    saved = work / "config.yaml"
    if resume and saved.exists():  # checked by every process, so that all of them stop
        import yaml

        if yaml.safe_load(saved.read_text(encoding="utf-8")) != config.to_dict():
            raise TrainingError(f"{saved}: the interrupted run used another config; rerun without --resume to start over")
    if main:
        if work.exists() and not resume:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        save_config(config, saved)
    state.wait_for_everyone()
    log = RunLog(work, main)

    train_texts, eval_texts, fingerprint = read_corpus(config)
    source = config.model.base
    if source is None:
        source = str(work / "scratch-init")
        if main and not (work / "scratch-init").exists():
            build_scratch_encoder(train_texts, config, work / "scratch-init")
        state.wait_for_everyone()
    model, tokenizer, new = load_mlm_model(source, config.model.allow_pickle, cfg.seed)
    limit = tokenizer.model_max_length
    if limit and limit < 1_000_000 and config.corpus.max_length > limit:
        raise TrainingError(f"corpus.max_length ({config.corpus.max_length}) exceeds the {limit} tokens "
                            f"{config.model.base} accepts")
    corpus = pack_corpus(tokenizer, train_texts, eval_texts, config, fingerprint)
    log.info("pretrain %s: %d training texts -> %d blocks of %d tokens, %d held-out texts -> %d blocks; new parameters: %s",
             config.model.base or "from scratch", len(train_texts), len(corpus.train), config.corpus.max_length,
             len(eval_texts), len(corpus.eval), ", ".join(new) or "none")

    special_ids = sorted({*tokenizer.all_special_ids, *([tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else [])})
    vocab_size = min(len(tokenizer), model.config.vocab_size)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else -1
    # the held-out masks are drawn once: every evaluation scores the same predictions
    eval_inputs, eval_labels = mask_tokens(corpus.eval, np.random.default_rng([cfg.seed, 2]), cfg.mlm_probability,
                                           tokenizer.mask_token_id, vocab_size, special_ids)
    held_out = (eval_inputs, eval_labels, (corpus.eval != pad_id).astype(np.int64))

    sampler = EpochBatches(len(corpus.train), cfg.batch_size, cfg.seed, state.num_processes)
    masker = BlockMasker(sampler, cfg.seed, cfg.mlm_probability, tokenizer.mask_token_id, vocab_size, special_ids, pad_id)
    trainer_dir = work / "trainer"
    checkpoint = last_checkpoint(trainer_dir) if resume else None
    if main:
        if checkpoint is None:
            # --resume without a checkpoint starts over: metrics of the lost attempt would mislead
            shutil.rmtree(trainer_dir, ignore_errors=True)
            (work / "metrics.jsonl").unlink(missing_ok=True)
        else:
            _trim_metrics(work / "metrics.jsonl", int(checkpoint.name.split("-")[-1]))
    state.wait_for_everyone()
    show = main and (show_progress_bar if show_progress_bar is not None else True)
    args = TrainingArguments(
        output_dir=str(trainer_dir), seed=cfg.seed, max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, lr_scheduler_type="linear",
        warmup_steps=int(cfg.warmup_ratio * cfg.max_steps), max_grad_norm=cfg.max_grad_norm, eval_strategy="steps",
        eval_steps=cfg.eval_every, save_strategy="steps", save_steps=cfg.eval_every, save_total_limit=1,
        logging_strategy="steps", logging_steps=1, report_to="none", disable_tqdm=not show,
        use_cpu=not torch.cuda.is_available(), remove_unused_columns=False, dataloader_num_workers=0)
    callback = PretrainLog(log, cfg.checkpoint_every, blocks_seen(sampler), config.corpus.max_length)
    trainer = MLMTrainer(model=model, args=args, train_dataset=_Blocks(corpus.train), eval_dataset=_Blocks(corpus.eval),
                         data_collator=masker, processing_class=tokenizer, sampler=sampler,
                         loss_module=masked_lm_loss(model), held_out=held_out, eval_batch_size=cfg.eval_batch_size,
                         optimizer_groups=lambda m: _optimizer(m, config, new), callbacks=[callback])
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    if checkpoint is None:
        trainer.evaluate()  # step 0: the starting point of the held-out loss
    else:
        log.info("pretrain: resumed at step %s", checkpoint.name.split("-")[-1])
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    state.wait_for_everyone()
    if main:
        _assemble(config, trainer.model, tokenizer, source, corpus, _summary(work / "metrics.jsonl"), new, work, out)
    state.wait_for_everyone()
    return out


class _Blocks:
    """Token blocks as a dataset: each item is a block and its index (the index seeds its mask)."""

    def __init__(self, blocks: np.ndarray) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"block": self.blocks[i], "index": i}


class BlockMasker:
    """The collator: masks each block with a generator seeded by (seed, epoch, block), stacks the batch.

    Masks are a function of the block and the epoch only (the sampler says
    which epoch), so a resumed run masks exactly as an uninterrupted one, on
    any number of processes.
    """

    def __init__(self, sampler: EpochBatches, seed: int, probability: float, mask_id: int, vocab_size: int,
                 special_ids: list[int], pad_id: int) -> None:
        self.sampler, self.seed, self.probability = sampler, seed, probability
        self.mask_id, self.vocab_size, self.special_ids, self.pad_id = mask_id, vocab_size, special_ids, pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        inputs, labels = zip(*(mask_tokens(item["block"][None], np.random.default_rng([self.seed, 1, self.sampler.epoch, item["index"]]),
                                           self.probability, self.mask_id, self.vocab_size, self.special_ids) for item in items))
        blocks = np.stack([item["block"] for item in items])
        return {"input_ids": torch.from_numpy(np.concatenate(inputs)), "labels": torch.from_numpy(np.concatenate(labels)),
                "attention_mask": torch.from_numpy((blocks != self.pad_id).astype(np.int64))}


def blocks_seen(sampler: EpochBatches) -> Any:
    """Blocks trained on by every process together after ``step`` optimizer steps (the order is known in advance)."""
    cache: dict[int, list[int]] = {}

    def seen(step: int) -> int:
        world, total, epoch = sampler.world, 0, 0
        while step > 0:
            if epoch not in cache:
                batches = epoch_batches(sampler.n, sampler.batch_size, sampler.seed, epoch, world)
                cache[epoch] = [sum(len(b) for b in batches[i:i + world]) for i in range(0, len(batches), world)]
            sizes = cache[epoch]
            total += sum(sizes[:step])
            step -= len(sizes)
            epoch += 1
        return total

    return seen


class MLMTrainer(Trainer):
    """``Trainer`` for MLM on naba's packed blocks: naba's batch order and masks, its held-out loss, its optimizer groups.

    One process computes the loss with the vocabulary projection at masked
    positions only (:func:`masked_lm_loss`: the same loss for about a
    quarter less compute); under DDP the model's own loss goes through the
    wrapped model, so that gradients synchronise.
    """

    def __init__(self, *args: Any, sampler: EpochBatches, loss_module: Any, held_out: tuple, eval_batch_size: int,
                 optimizer_groups: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sampler, self.loss_module, self.held_out = sampler, loss_module, held_out
        self.eval_batch_size, self.optimizer_groups = eval_batch_size, optimizer_groups
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False

    def get_train_dataloader(self) -> Any:
        import torch

        loader = torch.utils.data.DataLoader(self.train_dataset, batch_sampler=self.sampler, collate_fn=self.data_collator)
        return self.accelerator.prepare(loader)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is None:
            self.optimizer = self.optimizer_groups(self.model)
        return self.optimizer

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        import torch

        if self.args.world_size > 1:
            loss = model(**inputs).loss
        else:
            loss = self.loss_module(inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        if not torch.isfinite(loss):
            raise TrainingError(f"pretrain: loss became {loss.item()} at step {self.state.global_step}; "
                                "lower train.learning_rate")
        return (loss, None) if return_outputs else loss

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval") -> dict[str, float]:
        loss = _evaluate(self.loss_module, *self.held_out, self.eval_batch_size, self.args.device)
        metrics = {f"{metric_key_prefix}_loss": loss}
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self.model.train()
        return metrics




class PretrainLog(TrainerCallback):
    """``train.log`` lines and one ``metrics.jsonl`` record per held-out evaluation."""

    def __init__(self, log: RunLog, checkpoint_every: int | None, seen: Any, block_tokens: int) -> None:
        self.log, self.checkpoint_every, self.seen, self.block_tokens = log, checkpoint_every, seen, block_tokens
        self.losses: list[float] = []
        self.lr: float | None = None
        self.started, self.started_step = time.perf_counter(), 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started, self.started_step = time.perf_counter(), state.global_step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.checkpoint_every and state.global_step % self.checkpoint_every == 0:
            control.should_save = True
        if state.global_step >= state.max_steps:
            control.should_evaluate = control.should_save = True
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])
            self.lr = logs.get("learning_rate")

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        loss, step = (metrics or {})["eval_loss"], state.global_step
        done = self.seen(step) - self.seen(self.started_step)
        rate = done * self.block_tokens / max(time.perf_counter() - self.started, 1e-9) if step else None
        best = min([r["eval_loss"] for r in _records(self.log.directory / "metrics.jsonl")] or [float("inf")])
        improved = loss < best - 1e-9
        train_loss = float(np.mean(self.losses)) if self.losses else None
        self.log.metrics({"step": step, "loss": train_loss, "lr": self.lr, "tokens": self.seen(step) * self.block_tokens,
                          "tokens_per_s": None if rate is None else round(rate, 1), "eval_loss": loss,
                          "eval_perplexity": perplexity(loss), "best": improved})
        self.log.info("pretrain step %d: %seval MLM loss %.4f, perplexity %.2f%s", step,
                      "" if train_loss is None else f"loss {train_loss:.4f}, ", loss, perplexity(loss),
                      " (best)" if improved else "")
        self.losses = []


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _summary(metrics: Path) -> dict[str, Any]:
    """Steps, tokens and held-out losses of the run, from its ``metrics.jsonl`` (resumed runs included)."""
    records = _records(metrics)
    best = min(records, key=lambda r: r["eval_loss"])
    return {"step": records[-1]["step"], "tokens": records[-1]["tokens"], "initial_eval_loss": records[0]["eval_loss"],
            "last_eval_loss": records[-1]["eval_loss"], "best_eval_loss": best["eval_loss"], "best_step": best["step"]}


def _assemble(config: PretrainConfig, model: Any, tokenizer: Any, source: str, corpus: PackedCorpus, summary: dict[str, Any],
              new: list[str], work: Path, out: Path) -> None:
    """Write the base encoder (no MLM head), tokenizer and records next to ``out``; rename into place."""
    from naba import __version__
    from naba.atomic import atomic_dir
    from naba.manifest import library_versions

    base = getattr(model, model.base_model_prefix)
    state = {k: v.detach().contiguous() for k, v in base.state_dict().items()}
    # MLM models are built without the pooler: carry the source's trained pooler over unchanged
    state.update(_source_pooler(source, config.model.allow_pickle))
    record = {
        "format_version": FORMAT_VERSION,
        "naba_version": __version__,
        "base_model": config.model.base,
        "from_scratch": config.model.from_scratch.model_dump() if config.model.base is None else None,
        "architecture": type(base).__name__,
        "steps": summary["step"],
        "tokens_seen": summary["tokens"],
        "initial_eval_loss": summary["initial_eval_loss"],
        "initial_eval_perplexity": perplexity(summary["initial_eval_loss"]),
        "final_eval_loss": summary["last_eval_loss"],
        "final_eval_perplexity": perplexity(summary["last_eval_loss"]),
        "best_eval_loss": summary["best_eval_loss"],
        "best_eval_perplexity": perplexity(summary["best_eval_loss"]),
        "best_step": summary["best_step"],
        "weights": "final",  # the last step's weights; best_* only reports
        "newly_initialised": new,
        "corpus": corpus.stats,
        "config": config.to_dict(),
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_dir(out, overwrite=True) as tmp:
        base.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        settings_file = tmp / "tokenizer_config.json"
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        if settings.get("tokenizer_class") == "TokenizersBackend":
            # transformers 5's own name, which transformers 4 cannot resolve; both load this one from tokenizer.json
            settings["tokenizer_class"] = "PreTrainedTokenizerFast"
            settings_file.write_text(json.dumps(settings, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        (tmp / PRETRAIN_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        for name in ("config.yaml", "metrics.jsonl", "train.log"):
            if (work / name).exists():
                shutil.copy(work / name, tmp / name)
    shutil.rmtree(work, ignore_errors=True)
    logger.info("wrote %s: eval MLM loss %.4f (perplexity %.2f) after %d steps", out, summary["last_eval_loss"],
                perplexity(summary["last_eval_loss"]), summary["step"])
