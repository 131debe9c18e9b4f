"""What every exported model needs besides its own forward: the project's op semantics in PyTorch.

Copied verbatim next to the generated model.py by `deno task export`; its twin definitions are in
the Deno project (compiler/philox.ts, compiler/interpreter.ts, compiler/ir/mask.ts,
runtime/safetensors.ts, kernels/optimizer.ts). Works with torch >= 1.13 (no SDPA needed).
"""
import json
import math
import os
import struct

import torch

# ---------------------------------------------------------------------------------------------
# Philox 4x32-10 (compiler/philox.ts): element i of a random tensor is a pure function of
# (seed, offset, stream, i), so the torch side draws exactly the project's numbers. All words are
# int64 tensors holding values < 2^32; a 32x32-bit product is formed from 16-bit halves so that no
# intermediate leaves int64.

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF
_INV24 = 1.0 / 16777216.0


def _mul_hi_lo(m, a):
    """(hi, lo) 32-bit words of the 64-bit product m * a; m a Python int, a an int64 tensor."""
    p_lo = (a & 0xFFFF) * m  # < 2^48
    p_hi = (a >> 16) * m  # < 2^48
    mid = p_lo + ((p_hi & 0xFFFF) << 16)  # < 2^49
    return ((p_hi >> 16) + (mid >> 32)) & _MASK32, mid & _MASK32


def philox_words(counter, offset, stream, key):
    """Words 0 and 1 of Philox(counter=(i, offset, stream, 0), key=(key, 0)) for every i in `counter`."""
    c0 = counter & _MASK32  # element indices wrap like the u32 counter they are
    c1 = torch.full_like(counter, offset & _MASK32)
    c2 = torch.full_like(counter, stream & _MASK32)
    c3 = torch.zeros_like(counter)
    k0, k1 = key & _MASK32, 0
    for _ in range(10):
        hi0, lo0 = _mul_hi_lo(_M0, c0)
        hi1, lo1 = _mul_hi_lo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
    return c0, c1


def random_tensor(seed, stream, shape, first, normal, dtype, device):
    """rand_uniform / rand_normal of `shape`, whose element 0 is element `first` of the stream.

    `seed` is the (key, offset) pair the project feeds as the u32[2] `seed` input: (run seed, step).
    Uniform: the top 24 bits / 2^24. Normal: Box-Muller from words 0 and 1 (u1 in (0, 1]).
    Computed in float64 (as the interpreter does), then cast to the model's dtype.
    """
    n = math.prod(shape)
    counter = torch.arange(first, first + n, dtype=torch.int64, device=device)
    w0, w1 = philox_words(counter, int(seed[1]), stream, int(seed[0]))
    if normal:
        u1 = ((w0 >> 8) + 1).to(torch.float64) * _INV24
        u2 = (w1 >> 8).to(torch.float64) * _INV24
        x = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    else:
        x = (w0 >> 8).to(torch.float64) * _INV24
    return x.reshape(shape).to(dtype)


# ---------------------------------------------------------------------------------------------
# Integer semantics of the project (WGSL): i32 / u32 wrap; float -> int saturates, then truncates.
# Integers are held as int64 so that a product of two 32-bit values is exact before it wraps.


def wrap_i32(x):
    return ((x + 2**31) & _MASK32) - 2**31


def wrap_u32(x):
    return x & _MASK32


def float_to_int(x, lo, hi):
    """WGSL's i32(f) / u32(f): NaN -> 0, saturate to [lo, hi], truncate toward zero."""
    x = torch.nan_to_num(x, nan=0.0, posinf=float(hi), neginf=float(lo))
    return torch.trunc(torch.clamp(x, lo, hi)).to(torch.int64)


def int_div(a, b):
    """WGSL integer division: truncates; division by zero yields the dividend."""
    zero = b == 0
    q = torch.div(a, torch.where(zero, torch.ones_like(b), b), rounding_mode="trunc")
    return torch.where(zero, a, q)


# ---------------------------------------------------------------------------------------------
# Index ops (compiler/interpreter.ts): out-of-range rows read as zero and are dropped when added.


def gather_rows(table, index):
    """table [v, ...rest], index int [...i] -> [...i, ...rest]; rows outside [0, v) read zero."""
    rows = table.shape[0]
    valid = (index >= 0) & (index < rows)
    picked = table[torch.where(valid, index, torch.zeros_like(index))]
    keep = valid.reshape(valid.shape + (1,) * (table.dim() - 1))
    return torch.where(keep, picked, torch.zeros_like(picked))


def scatter_add_rows(index, updates, rows):
    """index int [...i], updates [...i, ...rest] -> [rows, ...rest]; rows outside [0, rows) dropped."""
    flat = index.reshape(-1)
    rest = updates.shape[index.dim():]
    upd = updates.reshape((flat.numel(),) + tuple(rest))
    valid = (flat >= 0) & (flat < rows)
    upd = torch.where(valid.reshape((-1,) + (1,) * len(rest)), upd, torch.zeros_like(upd))
    out = torch.zeros((rows,) + tuple(rest), dtype=updates.dtype, device=updates.device)
    return out.index_add(0, torch.where(valid, flat, torch.zeros_like(flat)), upd)


# ---------------------------------------------------------------------------------------------
# Attention (compiler/attention_reference.ts): explicit masked softmax(QK^T)V with a boolean mask
# built from the spec's layout rule. A row with no allowed key gives o = 0 and lse = EMPTY_ROW_LSE.

EMPTY_ROW_LSE = -1e30


def query_key(field, t):
    """A layout field [B, S] at the queries (the last t positions) as [B, t, 1] and at the keys [B, 1, S]."""
    s = field.shape[1]
    return field[:, s - t:, None], field[:, None, :]


def query_key_positions(s, t, device):
    """Positions i of the queries [t, 1] and j of the keys [1, S]."""
    i = torch.arange(s - t, s, device=device)[:, None]
    j = torch.arange(s, device=device)[None, :]
    return i, j


def masked_attention(q, k, v, allowed, scale):
    """q [B,H,T,D], k, v [B,H,S,D], allowed bool [B,T,S] -> [B,H,T,D+1]: o, then each row's lse."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    allowed = allowed[:, None].expand(scores.shape)
    masked = torch.where(allowed, scores, torch.full_like(scores, float("-inf")))
    m = masked.amax(-1, keepdim=True).detach()
    empty = torch.isneginf(m)
    m = torch.where(empty, torch.zeros_like(m), m)
    p = torch.exp(masked - m)
    total = p.sum(-1, keepdim=True)
    total = torch.where(empty, torch.ones_like(total), total)
    o = torch.matmul(p, v) / total
    lse = torch.where(empty, torch.full_like(m, EMPTY_ROW_LSE), m + torch.log(total))
    return torch.cat([o, lse], -1)


# ---------------------------------------------------------------------------------------------
# safetensors (runtime/safetensors.ts): an 8-byte little-endian header length N, N bytes of JSON
# header, then the raw little-endian data. Debian's torch has no safetensors package.

_SAFE_TO_TORCH = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_TORCH_TO_SAFE = {v: k for k, v in _SAFE_TO_TORCH.items()}


def read_safetensors(path):
    """{name: tensor} of a safetensors file (U32 is widened to int64: torch 1.13 has no uint32)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes is too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} overruns the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype, shape = info["dtype"], info["shape"]
        raw = bytearray(body[start:end])
        if dtype == "U32":
            t = torch.frombuffer(raw, dtype=torch.int32).to(torch.int64) & _MASK32 if raw else torch.zeros(0, dtype=torch.int64)
        elif dtype in _SAFE_TO_TORCH:
            t = torch.frombuffer(raw, dtype=_SAFE_TO_TORCH[dtype]) if raw else torch.zeros(0, dtype=_SAFE_TO_TORCH[dtype])
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dtype}, which this reader does not handle")
        out[name] = t.reshape(shape).clone()
    return out


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (contiguous, little-endian) atomically: a temp file, fsync, rename."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_SAFE:
            raise ValueError(f"{path}: tensor {name} has dtype {t.dtype}, which safetensors here cannot hold")
        raw = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": _TORCH_TO_SAFE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
