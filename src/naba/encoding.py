"""From records to model inputs and back: the one code path for training and inference.

A document (title + body, normalised) is tokenised whole, then cut into
overlapping windows of ``window.length`` tokens (``window.stride`` tokens
shared between neighbours, at most ``window.max_windows``). Stance inputs are
pairs: the target is the first segment of every window and only the text is
windowed. The model scores each window; a document's logits are the mean (or
max) of its windows' logits, in training and in inference alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from naba.config import NormalizationConfig, WindowConfig
from naba.text import normalize

MAX_TARGET_WORDS = 48


def document_text(
    record: dict[str, Any] | str, normalization: NormalizationConfig, include_title: bool = True
) -> str:
    """The text a model sees for one article: title and body, normalised."""
    if isinstance(record, str):
        return normalize(record, normalization)
    parts = [record.get("title") if include_title else None, record.get("text")]
    return normalize("\n".join(p for p in parts if isinstance(p, str) and p.strip()), normalization)


def target_text(target: str, normalization: NormalizationConfig) -> str:
    """A stance target (name or claim), normalised and capped so the text still fits a window."""
    return " ".join(normalize(target, normalization).split()[:MAX_TARGET_WORDS])


def encode_windows(
    tokenizer: Any, texts: Sequence[str], window: WindowConfig, targets: Sequence[str] | None = None
) -> list[list[dict[str, list[int]]]]:
    """Tokenise documents into windows.

    Args:
        tokenizer: A fast Hugging Face tokenizer.
        texts: Normalised documents.
        window: Window length, stride and cap.
        targets: Stance targets (one per text) for pair inputs.

    Returns:
        For each document, its windows: dicts of ``input_ids`` (and
        ``token_type_ids`` where the model uses them), special tokens included.
    """
    if not texts:
        return []
    kwargs: dict[str, Any] = dict(
        max_length=window.length,
        stride=window.stride,
        return_overflowing_tokens=True,
        return_attention_mask=False,
        padding=False,
    )
    if targets is not None:
        encoded = tokenizer(list(targets), list(texts), truncation="only_second", **kwargs)
    else:
        encoded = tokenizer(list(texts), truncation=True, **kwargs)
    mapping = encoded["overflow_to_sample_mapping"]
    keys = [k for k in ("input_ids", "token_type_ids") if k in encoded]
    docs: list[list[dict[str, list[int]]]] = [[] for _ in texts]
    for row, doc in enumerate(mapping):
        if len(docs[doc]) < window.max_windows:
            docs[doc].append({k: encoded[k][row] for k in keys})
    return docs


def task_windows(
    task: str,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    window: WindowConfig,
    normalization: NormalizationConfig,
    include_title: bool = True,
    pairs: Sequence[tuple[int, str]] | None = None,
) -> list[list[dict[str, list[int]]]]:
    """Records to one task's model inputs, the one way naba makes them, in training and in
    inference.

    Topic: one document per record (title and text). Stance: one document
    per ``(record index, target)`` in ``pairs`` (default: each record with its
    own ``target``), the target as the first segment of every window and the
    text alone after it; an article scored against several targets is
    normalised once.
    """
    if task == "topic":
        return encode_windows(
            tokenizer, [document_text(r, normalization, include_title) for r in records], window
        )
    if pairs is None:
        pairs = [(i, r["target"]) for i, r in enumerate(records)]
    normalized = {
        i: document_text(records[i]["text"], normalization)
        for i in dict.fromkeys(i for i, _ in pairs)
    }
    return encode_windows(
        tokenizer,
        [normalized[i] for i, _ in pairs],
        window,
        [target_text(t, normalization) for _, t in pairs],
    )


@dataclass
class Batch:
    """Padded windows of several documents, and which document each window belongs to."""

    inputs: dict[str, Any]  # tensors: input_ids, attention_mask (, token_type_ids)
    doc_index: Any  # LongTensor [n_windows]
    n_docs: int


def collate(docs: Sequence[Sequence[dict[str, list[int]]]], pad_id: int) -> Batch:
    """Pad every window of ``docs`` to the longest one in the batch."""
    import torch

    windows = [w for doc in docs for w in doc]
    width = max(len(w["input_ids"]) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    types = (
        torch.zeros((len(windows), width), dtype=torch.long)
        if "token_type_ids" in windows[0]
        else None
    )
    for row, w in enumerate(windows):
        n = len(w["input_ids"])
        ids[row, :n] = torch.tensor(w["input_ids"], dtype=torch.long)
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = torch.tensor(w["token_type_ids"], dtype=torch.long)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        inputs["token_type_ids"] = types
    doc_index = torch.tensor([d for d, doc in enumerate(docs) for _ in doc], dtype=torch.long)
    return Batch(inputs=inputs, doc_index=doc_index, n_docs=len(docs))


def pool(window_logits: Any, doc_index: Any, n_docs: int, mode: str = "mean") -> Any:
    """Pool window logits into document logits (``mean`` or ``max``)."""
    import torch

    width = window_logits.shape[-1]
    index = doc_index.unsqueeze(-1).expand(-1, width)
    if mode == "max":
        out = torch.full(
            (n_docs, width), float("-inf"), dtype=window_logits.dtype, device=window_logits.device
        )
        return out.scatter_reduce(0, index, window_logits, reduce="amax", include_self=True)
    total = torch.zeros(
        (n_docs, width), dtype=window_logits.dtype, device=window_logits.device
    ).index_add(0, doc_index, window_logits)
    counts = (
        torch.bincount(doc_index, minlength=n_docs)
        .clamp(min=1)
        .unsqueeze(-1)
        .to(window_logits.dtype)
    )
    return total / counts


def token_batches(
    lengths: Sequence[int], windows: Sequence[int], max_tokens: int
) -> Iterator[list[int]]:
    """Length-sorted batches of document indices, each within a padded-token budget.

    Documents are sorted by token count; a batch grows while
    ``windows in batch x longest window`` stays within ``max_tokens``, so
    short articles go many to a batch and long multi-window ones few, and
    padding is limited to the spread of lengths inside one batch. A document
    larger than the budget is a batch of its own.

    Args:
        lengths: Each document's longest window (tokens).
        windows: Each document's window count.
        max_tokens: Padded tokens per batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], windows[i]))
    batch: list[int] = []
    n_windows = width = 0
    for i in order:
        grown_windows, grown_width = n_windows + windows[i], max(width, lengths[i])
        if batch and grown_windows * grown_width > max_tokens:
            yield batch
            batch, grown_windows, grown_width = [], windows[i], lengths[i]
        batch.append(i)
        n_windows, width = grown_windows, grown_width
    if batch:
        yield batch


def pooled_logits(
    model: Any,
    docs: Sequence[Sequence[dict[str, list[int]]]],
    pad_id: int,
    max_tokens: int,
    pooling: str,
    *,
    device: Any = None,
    autocast: Any = None,
    progress: Any = None,
) -> Any:
    """Article logits (window logits pooled per article) as a float32 array, in the order of
    ``docs``.

    The one scoring loop of training (dev, test, teacher logits) and inference:
    length-sorted batches within ``max_tokens`` padded tokens
    (:func:`token_batches`), ``torch.inference_mode``, and on a GPU pinned
    inputs copied without blocking and ``autocast`` (a dtype, or None for fp32).
    ``progress`` gets ``update(articles)`` after each batch.
    """
    import contextlib

    import numpy as np
    import torch

    if not docs:
        return np.zeros((0, 0), dtype=np.float32)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    gpu = device.type == "cuda"
    lengths = [max((len(w["input_ids"]) for w in doc), default=0) for doc in docs]
    windows = [len(doc) for doc in docs]
    out: Any = None
    context = (
        torch.autocast("cuda", dtype=autocast)
        if gpu and autocast is not None
        else contextlib.nullcontext()
    )
    model.eval()
    with torch.inference_mode(), context:
        for chunk in token_batches(lengths, windows, max_tokens):
            batch = collate([docs[i] for i in chunk], pad_id)
            inputs = batch.inputs
            if gpu:  # pinned host memory, copied while the GPU still works on the previous batch
                inputs = {
                    k: v.pin_memory().to(device, non_blocking=True) for k, v in inputs.items()
                }
            doc_index = batch.doc_index.to(device) if gpu else batch.doc_index
            logits = (
                pool(model(**inputs).logits.float(), doc_index, batch.n_docs, pooling).cpu().numpy()
            )
            if out is None:
                out = np.zeros((len(docs), logits.shape[1]), dtype=np.float32)
            out[chunk] = logits
            if progress is not None:
                progress.update(len(chunk))
    return out
