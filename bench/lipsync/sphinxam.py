"""pocketsphinx's US English acoustic model as a per-frame scorer (an experiment, numpy only).

The model (BSD licence, shipped in the ``pocketsphinx`` wheel) is a phonetically tied mixture:
one codebook of 128 diagonal Gaussians per base phone and feature stream (13 cepstra, their
deltas, their double deltas), and per-senone mixture weights. This module reads the files,
computes sphinx-style MFCC (the model's ``feat.params``) and scores the 126 context-independent
senones (42 base phones x 3 states) of every 10 ms frame. It answers one question: do scores
from a model trained on real speech carry over to voices our own model never heard?
"""

from __future__ import annotations

import functools
import pathlib
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft

F32 = npt.NDArray[np.float32]

RATE = 16000
SHIFT = 160
WINDOW = 410  # 0.025625 s
NFFT = 512
N_FILT = 25
LOWER, UPPER = 130.0, 6800.0
N_CEP = 13
LIFTER = 22


def model_dir() -> pathlib.Path:
    """Where the pocketsphinx wheel keeps its US English acoustic model."""
    from pocketsphinx import get_model_path

    return pathlib.Path(get_model_path()) / "en-us" / "en-us"


def _s3_header(data: bytes) -> tuple[int, bool]:
    """Offset of the payload of a sphinx-3 binary file and whether it is byte-swapped."""
    end = data.index(b"endhdr\n") + len(b"endhdr\n")
    (magic,) = struct.unpack_from("<I", data, end)
    if magic == 0x11223344:
        return end + 4, False
    if magic == 0x44332211:
        return end + 4, True
    raise ValueError("not a sphinx-3 binary file")


def _gauden(path: pathlib.Path) -> F32:
    """means or variances as (codebook, stream, density, 13)."""
    data = path.read_bytes()
    at, swap = _s3_header(data)
    e = ">" if swap else "<"
    n_mgau, n_feat, n_density = struct.unpack_from(f"{e}3i", data, at)
    at += 12
    veclen = struct.unpack_from(f"{e}{n_feat}i", data, at)
    at += 4 * n_feat
    (total,) = struct.unpack_from(f"{e}i", data, at)
    at += 4
    if set(veclen) != {N_CEP} or total != n_mgau * n_density * sum(veclen):
        raise ValueError(f"unexpected layout in {path.name}")
    x = np.frombuffer(data, f"{e}f4", total, at).astype(np.float32)
    return x.reshape(n_mgau, n_feat, n_density, N_CEP)


def _ciphones(path: pathlib.Path) -> list[str]:
    """The base phone names of a binary mdef, in senone order."""
    data = path.read_bytes()
    at = data.index(b"END FILE FORMAT DESCRIPTION\n") + len(b"END FILE FORMAT DESCRIPTION\n")
    at = (at + 3) // 4 * 4
    n_ci, _n_phone, n_emit, n_ci_sen = struct.unpack_from("<4i", data, at)
    if n_emit != 3 or n_ci_sen != 3 * n_ci:
        raise ValueError("unexpected mdef")
    at += 40
    names = data[at:].split(b"\0")[:n_ci]
    return [n.decode() for n in names]


def _sendump(path: pathlib.Path, n_senones: int) -> F32:
    """Log mixture weights of the first ``n_senones`` senones as (stream, density, senone)."""
    data = path.read_bytes()
    at = 0
    n_feat = 0
    while True:
        (n,) = struct.unpack_from("<i", data, at)
        at += 4
        if n == 0:
            break
        line = data[at : at + n].rstrip(b"\0").decode(errors="replace")
        at += n
        if line.startswith("feature_count "):
            n_feat = int(line.split()[1])
        if line.startswith("cluster_count ") and int(line.split()[1]) != 0:
            raise ValueError("clustered sendump not supported")
    rows, cols = struct.unpack_from("<2i", data, at)
    at += 8
    raw = np.frombuffer(data, np.uint8, n_feat * rows * cols, at).reshape(n_feat, rows, cols)
    # stored as -log(w) in logmath base 1.0001, shifted right by 10 bits
    return (-raw[:, :, :n_senones].astype(np.float32) * 1024.0 * np.log(1.0001)).astype(np.float32)


@dataclass(frozen=True)
class Model:
    """The context-independent part of the acoustic model, ready for scoring."""

    phones: list[str]  # base phones; senones 3 i, 3 i + 1, 3 i + 2 are phone i's states
    means: F32  # (codebook, stream, density, 13)
    prec: F32  # 1 / variance, same shape
    const: F32  # (codebook, stream, density): each Gaussian's log normalizer
    logw: F32  # (stream, density, senone): log mixture weights of the CI senones


@functools.lru_cache(maxsize=1)
def model() -> Model:
    """The model from the pocketsphinx wheel (read once)."""
    d = model_dir()
    phones = _ciphones(d / "mdef")
    var = np.maximum(_gauden(d / "variances"), 1e-4)  # pocketsphinx's variance floor
    const = (-0.5 * (N_CEP * np.log(2 * np.pi) + np.log(var).sum(-1))).astype(np.float32)
    return Model(phones, _gauden(d / "means"), (1.0 / var).astype(np.float32), const,
                 _sendump(d / "sendump", 3 * len(phones)))  # fmt: skip


@functools.lru_cache(maxsize=1)
def _filters() -> F32:
    """Sphinx's mel filter bank (unit area, edges rounded to FFT bins) as (N_FILT, NFFT/2+1)."""

    def mel(f: float) -> float:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def inv(m: float) -> float:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    step = RATE / NFFT
    lo, hi = mel(LOWER), mel(UPPER)
    edges = [round(inv(lo + i * (hi - lo) / (N_FILT + 1)) / step) * step for i in range(N_FILT + 2)]
    hz = np.arange(NFFT // 2 + 1) * step
    out = np.zeros((N_FILT, NFFT // 2 + 1), np.float32)
    for i in range(N_FILT):
        left, centre, right = edges[i : i + 3]
        height = 2.0 / (right - left)
        up = (hz - left) / max(centre - left, 1e-9)
        down = (right - hz) / max(right - centre, 1e-9)
        out[i] = np.clip(np.minimum(up, down), 0.0, None) * height
    return out


def dither(n: int) -> F32:
    """Deterministic uniform noise in [-1, 1) for samples 0 .. n-1 (splitmix64 of the index)."""
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32) / float(1 << 23) - 1.0).astype(np.float32)


def mfcc(audio: npt.NDArray[np.int16], noise_floor: bool = True) -> F32:
    """Sphinx-style cepstra (T, 13) of 16 kHz PCM16, before mean normalization.

    With ``noise_floor``, one LSB of (deterministic) dither is added, as sphinx's ``-dither``
    does, so that digital silence reads as the quiet room the model knows: without it, an all-zero
    frame is an extreme point of the feature space that the model reads as ``ZH``.
    """
    x = audio.astype(np.float32)
    if noise_floor:
        x = x + dither(len(x))
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    n = max(0, 1 + (len(x) - WINDOW) // SHIFT)
    if n == 0:
        return np.zeros((0, N_CEP), np.float32)
    idx = np.arange(WINDOW)[None, :] + SHIFT * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * np.hamming(WINDOW).astype(np.float32), NFFT)) ** 2
    logmel = np.log(np.maximum(power @ _filters().T, 1e-4))
    cep = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, :N_CEP]
    lifter = 1.0 + LIFTER / 2.0 * np.sin(np.pi * np.arange(N_CEP) / LIFTER)
    return (cep * lifter).astype(np.float32)


def streams(cep: F32) -> F32:
    """Mean-normalized cepstra with deltas and double deltas as (T, 3, 13) (``1s_c_d_dd``)."""
    c = cep - cep.mean(0, keepdims=True)
    p = np.pad(c, ((3, 3), (0, 0)), mode="edge")
    t = np.arange(len(c)) + 3
    d = p[t + 2] - p[t - 2]
    dd = (p[t + 3] - p[t - 1]) - (p[t + 1] - p[t - 3])
    return np.stack([c, d, dd], 1).astype(np.float32)


def _gaussians(m: Model, x: F32, stream: int) -> F32:
    """Log densities (T, codebook, density) of every Gaussian for one stream of ``x`` (T, 3, 13)."""
    n_cb, _, n_density, _ = m.means.shape
    xs = x[:, stream, :]
    prec, means = m.prec[:, stream], m.means[:, stream]
    # -0.5 * sum prec * (x - mu)^2, expanded into products
    a = (xs**2) @ prec.reshape(-1, N_CEP).T
    b = xs @ (prec * means).reshape(-1, N_CEP).T
    c = (prec * means**2).sum(-1).reshape(-1)
    return (-0.5 * (a - 2 * b + c) + m.const[:, stream].reshape(-1)).reshape(len(x), n_cb, n_density)


def senone_scores(audio: npt.NDArray[np.int16], noise_floor: bool = True) -> F32:
    """Log-likelihoods (T, 126) of the context-independent senones for 16 kHz PCM16 ``audio``."""
    m = model()
    x = streams(mfcc(audio, noise_floor))  # (T, 3, 13)
    n_cb, _, n_density, _ = m.means.shape
    weights = np.exp(m.logw).reshape(3, n_density, n_cb, 3).transpose(0, 2, 1, 3)  # (stream, cb, density, state)
    out = np.zeros((len(x), n_cb, 3), np.float32)
    for s in range(3):
        ll = _gaussians(m, x, s)
        top = ll.max(-1)
        mix = np.einsum("tcd,cds->tcs", np.exp(ll - top[..., None]), weights[s], optimize=True)
        out += top[..., None] + np.log(np.maximum(mix, 1e-30))
    return out.reshape(len(x), 3 * n_cb)


def senone_phones(path: pathlib.Path | None = None) -> npt.NDArray[np.int64]:
    """The base phone of every senone of a binary mdef (context-independent and -dependent).

    A phonetically tied model's senones share the codebook of their base phone: a triphone's entry
    names its base in its transition matrix (one per base phone), and its senone sequence lists the
    senones of its three states.
    """
    data = (path or model_dir() / "mdef").read_bytes()
    at = data.index(b"END FILE FORMAT DESCRIPTION\n") + len(b"END FILE FORMAT DESCRIPTION\n")
    at = (at + 3) // 4 * 4
    n_ci, n_phone, n_emit, n_ci_sen, n_sen, n_tmat, n_sseq, _n_ctx, n_cd_tree, _sil = struct.unpack_from(
        "<10i", data, at
    )
    if n_emit != 3 or n_ci_sen != 3 * n_ci or n_tmat != n_ci:
        raise ValueError("unexpected mdef")
    at += 40
    for _ in range(n_ci):
        at = data.index(b"\0", at) + 1
    at = (at + 3) // 4 * 4 + 8 * n_cd_tree  # the context tree: {int16 ctx, int16 n_down, int32 pid/down}
    phones = np.frombuffer(data, np.dtype([("ssid", "<i4"), ("tmat", "<i4"), ("info", "u1", 4)]), n_phone, at)
    at += 12 * n_phone + 4  # the senone sequences follow a count
    if at + 2 * n_emit * n_sseq > len(data):
        raise ValueError("truncated mdef")
    sseq = np.frombuffer(data, "<i2", n_emit * n_sseq, at).reshape(n_sseq, n_emit)
    in_range = phones["ssid"].min() >= 0 and phones["ssid"].max() < n_sseq and phones["tmat"].min() >= 0
    if not (in_range and phones["tmat"].max() < n_ci and sseq.min() >= 0 and sseq.max() < n_sen):
        raise ValueError("mdef indices out of range")
    base = np.full(n_sen, -1, np.int64)
    seqs = sseq[phones["ssid"]]  # (n_phone, 3)
    base[seqs.ravel()] = np.repeat(phones["tmat"], n_emit)
    if (base < 0).any() or not np.array_equal(base[:n_ci_sen], np.repeat(np.arange(n_ci), 3)):
        raise ValueError("unexpected senone layout")
    low, high = np.full(n_sen, n_ci, np.int64), np.full(n_sen, -1, np.int64)
    np.minimum.at(low, seqs.ravel(), np.repeat(phones["tmat"], n_emit))
    np.maximum.at(high, seqs.ravel(), np.repeat(phones["tmat"], n_emit))
    if not (np.array_equal(low, base) and np.array_equal(high, base)):
        raise ValueError("a senone is shared by two base phones")
    return base


def all_senone_scores(audio: npt.NDArray[np.int16]) -> tuple[F32, npt.NDArray[np.int64]]:
    """Log-likelihoods (T, senones) of every senone (context-dependent ones too) and their base phones.

    The same cepstra and codebooks as :func:`senone_scores` (whose 126 senones are the first
    columns here), every senone its own mixture over its base phone's codebook.
    """
    m = model()
    base = senone_phones()
    weights = np.exp(_sendump(model_dir() / "sendump", len(base)))  # (stream, density, senone)
    x = streams(mfcc(audio))
    out = np.zeros((len(x), len(base)), np.float32)
    members = [np.flatnonzero(base == cb) for cb in range(m.means.shape[0])]
    for s in range(3):
        ll = _gaussians(m, x, s)
        top = ll.max(-1)
        e = np.exp(ll - top[..., None])
        for cb, idx in enumerate(members):
            mix = e[:, cb, :] @ weights[s][:, idx]
            out[:, idx] += top[:, cb : cb + 1] + np.log(np.maximum(mix, 1e-30))
    return out, base
