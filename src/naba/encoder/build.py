"""What every offline encoder is built from: corpus text, a deterministic WordPiece vocabulary, a
BERT.

``naba encoder tiny`` and ``naba pretrain`` from scratch build their BERT
here (:func:`build_bert`), so the two are the same shape and pipeline; the
e5-small import reads its trimming corpus with :func:`corpus_lines`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from naba.atomic import atomic_dir
from naba.config import NormalizationConfig
from naba.errors import InputError
from naba.text import normalize


def corpus_lines(
    paths: Iterable[Path],
    limit: int | None = None,
    normalization: NormalizationConfig | None = None,
) -> Iterator[str]:
    """Texts from ``.txt``/``.txt.gz`` (a line each) and JSONL (``title`` + ``text``), normalised
    (with naba's default settings unless ``normalization`` is given)."""
    config = normalization or NormalizationConfig()
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


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD_START = "\u2581"


def train_wordpiece(texts: list[str], vocab_size: int, max_positions: int = 512) -> Any:
    """A WordPiece tokenizer trained on ``texts``, the same on every run.

    ``tokenizers``' ``WordPieceTrainer`` (0.23) numbers the ``##`` pieces in
    hash-map order, and ties between equally frequent merges are broken by
    those numbers: two runs on the same text give vocabularies that differ in
    dozens of pieces. Its BPE trainer without a subword prefix is
    deterministic, so the merges are learned by BPE on words marked with a
    word-start symbol, and converted: ``▁piece`` -> ``piece`` (starts a
    word), ``piece`` -> ``##piece`` (continues one). Every character of the
    corpus is kept in both forms, then merges in rank order up to
    ``vocab_size``. The pipeline is ``naba encoder tiny``'s: NFC, BERT
    pre-tokenisation, ``[CLS] ... [SEP]``.

    Args:
        texts: Normalised texts.
        vocab_size: Pieces, special tokens included (more when the corpus has more characters than
            that).
        max_positions: The ``model_max_length`` written with the tokenizer.

    Returns:
        A ``PreTrainedTokenizerFast``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = _wordpiece_vocabulary(_bpe_pieces(texts, vocab_size), vocab_size)
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_positions,
    )


def _bpe_pieces(texts: list[str], vocab_size: int) -> list[str]:
    """The pieces BPE learns on ``texts`` (words marked with a word-start symbol), in merge
    rank order, without the special tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.BertPreTokenizer(),
            pre_tokenizers.Metaspace(replacement=_WORD_START, prepend_scheme="always", split=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    bpe.train_from_iterator((t.replace(_WORD_START, " ") for t in texts), trainer=trainer)
    return [
        piece
        for piece, _ in sorted(bpe.get_vocab().items(), key=lambda item: item[1])
        if piece not in SPECIAL_TOKENS
    ]


def _wordpiece_vocabulary(learned: list[str], vocab_size: int) -> dict[str, int]:
    """The BPE pieces as a WordPiece vocabulary: the special tokens, every character in both
    forms, then ``▁piece`` -> ``piece`` and ``piece`` -> ``##piece`` up to ``vocab_size``."""
    vocab: dict[str, int] = {}
    for piece in SPECIAL_TOKENS:
        vocab[piece] = len(vocab)
    for char in (p for p in learned if len(p) == 1 and p != _WORD_START):
        for piece in (char, "##" + char):
            vocab.setdefault(piece, len(vocab))
    for piece in learned:  # ids follow merge rank: the most frequent merges first
        if len(vocab) >= vocab_size:
            break
        converted = piece[len(_WORD_START) :] if piece.startswith(_WORD_START) else "##" + piece
        if converted and converted != "##":
            vocab.setdefault(converted, len(vocab))
    return vocab


def build_bert(
    texts: list[str],
    output: Path,
    *,
    layers: int,
    hidden: int,
    heads: int,
    vocab_size: int,
    max_positions: int,
    seed: int,
    overwrite: bool = False,
) -> int:
    """Train a WordPiece vocabulary on ``texts`` and write a randomly initialised BERT directory.

    Args:
        texts: Normalised texts.
        output: The directory to write (atomically): ``model.safetensors``, ``config.json``, the
            tokenizer.
        layers, hidden, heads: The encoder's shape (``intermediate_size`` is ``4 x hidden``).
        vocab_size: WordPiece pieces, special tokens included (see :func:`train_wordpiece`).
        max_positions: The longest input the encoder accepts.
        seed: Seeds the initial weights.
        overwrite: Replace an existing ``output``.

    Returns:
        The vocabulary size (more than ``vocab_size`` when the texts have more characters than
        that).

    Raises:
        FileExistsError: ``output`` exists and ``overwrite`` is false.
    """
    import torch
    from transformers import BertConfig, BertModel

    # Deterministic WordPiece (see train_wordpiece): the same texts give the same vocabulary.
    tokenizer = train_wordpiece(texts, vocab_size, max_positions)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    with atomic_dir(output, overwrite=overwrite) as tmp:
        BertModel(config).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return config.vocab_size
