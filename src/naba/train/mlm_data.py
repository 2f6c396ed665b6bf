"""The MLM corpus: texts read, normalised, held out, packed into blocks, and masked per (seed,
epoch, block).

Texts are normalised exactly as ``naba train`` normalises (the default
:class:`~naba.config.NormalizationConfig`), tokenised, concatenated with a
separator after each text and cut into blocks of ``corpus.max_length``
tokens, each ``[CLS] ... [SEP]`` (the ``group_texts`` packing of
transformers' ``run_mlm.py``). A fraction of the *texts* (not blocks) is held
out, so no held-out sentence is seen in training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import NormalizationConfig, PretrainConfig
from naba.encoder.build import corpus_lines
from naba.errors import InputError
from naba.train.engine import EpochBatches, epoch_batches

IGNORE_INDEX = -100  # label of a position with nothing to predict (PyTorch's cross-entropy default)


@dataclass
class PackedCorpus:
    """Token blocks ready for masking, and the facts about them that ``pretrain.json`` records."""

    train: np.ndarray  # [blocks, max_length] int32 token ids
    eval: np.ndarray
    stats: dict[str, Any]


def split_texts(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out ``fraction`` of the texts (at least one) for evaluation; both parts keep corpus
    order.

    Raises:
        InputError: fewer than two texts.
    """
    if len(texts) < 2:
        raise InputError(
            f"the corpus has {len(texts)} text(s); need at least 2 (to train on and to evaluate on)"
        )
    n_eval = min(len(texts) - 1, max(1, round(len(texts) * fraction)))
    held_out = set(np.random.default_rng([seed, 0]).permutation(len(texts))[:n_eval].tolist())
    return (
        [t for i, t in enumerate(texts) if i not in held_out],
        [t for i, t in enumerate(texts) if i in held_out],
    )


def _special_layout(tokenizer: Any) -> tuple[list[int], list[int], list[int]]:
    """Token ids that open a block, close a block, and follow each text ([CLS]/[SEP] or
    <s>/</s>)."""
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
        for encoding in backend.encode_batch(
            texts[first : first + batch], add_special_tokens=False
        ):
            parts.append(np.asarray(encoding.ids, dtype=np.int32))
            parts.append(sep)
    stream = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    n_full = len(stream) // body
    if n_full == 0 and len(stream):
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        block = np.full(max_length, pad, np.int32)
        row = np.concatenate([start, stream, end]).astype(np.int32)
        block[: len(row)] = row
        return block[None]
    chunks = stream[: n_full * body].reshape(n_full, body)
    columns = (
        [np.full((n_full, 1), t, np.int32) for t in start]
        + [chunks]
        + [np.full((n_full, 1), t, np.int32) for t in end]
    )
    return np.concatenate(columns, axis=1)


def mask_tokens(
    blocks: np.ndarray,
    rng: np.random.Generator,
    probability: float,
    mask_id: int,
    vocab_size: int,
    special_ids: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking: pick ``probability`` of the ordinary tokens; of those 80% become the mask,
    10% a random token.

    Special tokens (and padding) are never picked. At least one token is
    picked when any can be, so a batch always has a loss.

    Args:
        blocks: Token ids ``[n, length]``.
        rng: The generator that decides everything (seeded by the caller: the same seed, the same
            masks).
        probability: The share of tokens to predict.
        mask_id: The mask token.
        vocab_size: Random replacements are drawn from ``[0, vocab_size)``.
        special_ids: Ids never picked.

    Returns:
        ``(input_ids, labels)``, int64; ``labels`` is the original id where a prediction is asked,
        else -100.
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
        raise InputError(
            f"{', '.join(map(str, files))}: {len(texts)} text(s) after normalisation; "
            "need at least 2 (to train on and to evaluate on)"
        )
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


def pack_corpus(
    tokenizer: Any,
    train_texts: list[str],
    eval_texts: list[str],
    config: PretrainConfig,
    fingerprint: dict[str, Any],
) -> PackedCorpus:
    """Pack both parts into blocks; the held-out part is capped at ``corpus.max_eval_blocks``.

    Raises:
        InputError: the training texts do not fill one block.
    """
    length = config.corpus.max_length
    train = pack_blocks(tokenizer, train_texts, length)
    held_out = pack_blocks(tokenizer, eval_texts, length)
    available = len(held_out)
    if config.corpus.max_eval_blocks is not None:
        held_out = held_out[: config.corpus.max_eval_blocks]
    if not len(train) or not len(held_out):
        raise InputError(
            f"{', '.join(map(str, config.corpus.files))}: "
            f"too little text for blocks of {length} tokens; "
            "add text or lower corpus.max_length"
        )
    pad = tokenizer.pad_token_id
    stats = {
        **fingerprint,
        "max_length": length,
        "train_blocks": len(train),
        "eval_blocks": len(held_out),
        "eval_blocks_available": available,
        "train_tokens": int((train != pad).sum()) if pad is not None else train.size,
    }
    return PackedCorpus(train=train, eval=held_out, stats=stats)


class Blocks:
    """Token blocks as a dataset: each item is a block and its index (the index seeds its mask)."""

    def __init__(self, blocks: np.ndarray) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"block": self.blocks[i], "index": i}


class BlockMasker:
    """The collator: masks each block with a generator seeded by (seed, epoch, block), stacks the
    batch.

    Masks are a function of the block and the epoch only (the sampler says
    which epoch), so a resumed run masks exactly as an uninterrupted one, on
    any number of processes.
    """

    def __init__(
        self,
        sampler: EpochBatches,
        seed: int,
        probability: float,
        mask_id: int,
        vocab_size: int,
        special_ids: list[int],
        pad_id: int,
    ) -> None:
        self.sampler, self.seed, self.probability = sampler, seed, probability
        self.mask_id, self.vocab_size, self.special_ids, self.pad_id = (
            mask_id,
            vocab_size,
            special_ids,
            pad_id,
        )

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        inputs, labels = zip(
            *(
                mask_tokens(
                    item["block"][None],
                    np.random.default_rng([self.seed, 1, self.sampler.epoch, item["index"]]),
                    self.probability,
                    self.mask_id,
                    self.vocab_size,
                    self.special_ids,
                )
                for item in items
            )
        )
        blocks = np.stack([item["block"] for item in items])
        return {
            "input_ids": torch.from_numpy(np.concatenate(inputs)),
            "labels": torch.from_numpy(np.concatenate(labels)),
            "attention_mask": torch.from_numpy((blocks != self.pad_id).astype(np.int64)),
        }


def blocks_seen(sampler: EpochBatches) -> Any:
    """Blocks trained on by every process together after ``step`` optimizer steps (the order is
    known in advance)."""
    cache: dict[int, list[int]] = {}

    def seen(step: int) -> int:
        world, total, epoch = sampler.world, 0, 0
        while step > 0:
            if epoch not in cache:
                batches = epoch_batches(sampler.n, sampler.batch_size, sampler.seed, epoch, world)
                cache[epoch] = [
                    sum(len(b) for b in batches[i : i + world])
                    for i in range(0, len(batches), world)
                ]
            sizes = cache[epoch]
            total += sum(sizes[:step])
            step -= len(sizes)
            epoch += 1
        return total

    return seen
