"""Synthetic spoken-digit-like spike data in the SHD layout (offline stand-in for SHD).

Generative model (all times in seconds, channels 0 (low frequency) .. ``n_channels - 1`` (high)).

*Word templates* (fixed by ``template_seed``, shared by every split and every call). A pool of
``n_syllable_pool`` syllables is drawn once; each syllable is a set of 2-4 formant-like *bands*
(formant k centred in the k-th quarter-ish of the channel axis; sometimes an extra wide,
high-frequency "fricative" band). A band has an onset/offset inside the syllable, a centre that
glides linearly from ``c0`` to ``c1`` with a parabolic bow, a Gaussian cross-section of width
``sigma`` (``band_width``: fractions of the channel axis, i.e. some tens of channels at 700) and
a relative amplitude. Each class (word) is a sequence of 2-4 syllables picked from the pool
(classes share syllables, so they overlap), each perturbed per class (centres, glides, widths,
amplitudes) and given its own share of the word length (40-70 % of ``duration``).

*Speakers* (also fixed by ``template_seed``): a pitch offset (shift of every band along the channel
axis, higher for "female" speakers; ``pitch_std``), a tempo factor (time warp about the word onset,
uniform in ``tempo_range``) and a loudness (rate factor, uniform in ``loudness_range``).

*Samples* (driven by the per-call ``seed``): class and speaker, then small random jitter: word
onset (``onset`` fraction of ``duration`` plus Gaussian ``jitter`` s), tempo (x exp(N(0, 0.04))),
pitch (N(0, 0.004) of the axis), loudness (x exp(N(0, 0.15))), per band timing (N(0, jitter/2)),
centre (N(0, 0.004)) and amplitude (x exp(N(0, 0.2))).

*Spikes*: an inhomogeneous Poisson process with intensity (Hz per channel)

    lambda(t, c) = rate_scale * (noise_rate
                   + sum_bands peak_rate * a * env((t - t_on) / T) * exp(-(c - mu((t - t_on) / T))^2 / (2 s^2)))

with the band's amplitude ``a`` (amplitude x speaker and sample loudness), onset ``t_on``, length
``T`` (tempo-warped), centre ``mu(x) = c0 + (c1 - c0) x + 4 bow x (1 - x)`` and width ``s``;
``env(x) = 1 - |2x - 1|`` on [0, 1] is a triangular onset/offset envelope. It is sampled exactly
and vectorised: per band a Poisson number of events with position x ~ triangular (the sum of two
uniforms) and channel ``round(mu(x) + s N(0, 1))``; the background is a homogeneous process on all
channels. Events outside ``[0, duration) x [0, n_channels)`` are dropped (the word is cut off
like a recording window). Each sample's events are then sorted by time (ties by channel). With the
defaults a sample has about 5000 spikes (roughly 1500-13000, depending on class and speaker), and a
nearest-class-mean classifier on coarse (channel, time) histograms reaches about 65-70 % (20
classes), lower on the held-out speakers: learnable, not trivial.

:func:`write_synth_shd` writes ``shd_train.h5`` / ``shd_test.h5`` in the published SHD layout
(float16 times, uint16 units and labels, ``extra/speaker``, ``extra/keys``,
``extra/meta_info/{gender, age, body_height}``); as in SHD, the last ``n_heldout_speakers``
speakers appear only in the test file.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
from numba import njit

from exactsnn.events import SpikeBatch

__all__ = ["SynthSHD", "synth_shd_samples", "write_synth_shd", "class_names", "speaker_split"]

_FLOAT16_MAX = 65504.0
_CHUNK = 256  # samples per generation chunk in write_synth_shd (fixed: part of the seed -> bits map)


def _check_range(name: str, r: tuple[float, float], lo: float, hi: float = math.inf, open_lo: bool = False) -> None:
    ok = isinstance(r, tuple) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
    if ok:
        a, b = float(r[0]), float(r[1])
        ok = math.isfinite(a) and math.isfinite(b) and a <= b and b <= hi and (a > lo if open_lo else a >= lo)
    if not ok:
        bound = f"({lo}, {hi}]" if open_lo else f"[{lo}, {hi}]"
        raise ValueError(f"SynthSHD: {name} must be a tuple (lo, hi) with lo <= hi inside {bound}, got {r!r}")


@dataclass(frozen=True)
class SynthSHD:
    """Configuration of the synthetic SHD-like generator (see the module docstring for the model).

    Sizes: ``n_channels`` (<= 65536, stored as uint16), ``n_classes``, ``n_speakers``,
    ``n_heldout_speakers`` (test-only speakers, the highest speaker ids). Times: ``duration`` (s,
    trial length), ``onset`` (word onset as a fraction of ``duration``), ``jitter`` (s, std of the
    per-sample onset shift). Rates: ``peak_rate`` (Hz per channel at a band's peak), ``noise_rate``
    (Hz per channel, background), ``rate_scale`` (multiplies every rate). Speakers: ``tempo_range``
    (time-warp factors), ``loudness_range`` (rate factors), ``pitch_std`` (std of the channel
    offset, fraction of the channel axis). Templates: ``band_width`` (range of band widths,
    fractions of the channel axis), ``n_syllable_pool``, ``template_seed``.
    """

    n_channels: int = 700
    n_classes: int = 20
    n_speakers: int = 12
    n_heldout_speakers: int = 2
    duration: float = 1.0
    rate_scale: float = 1.0
    peak_rate: float = 300.0
    noise_rate: float = 1.0
    onset: float = 0.1
    jitter: float = 0.03
    tempo_range: tuple[float, float] = (0.8, 1.2)
    loudness_range: tuple[float, float] = (0.7, 1.3)
    pitch_std: float = 0.04
    band_width: tuple[float, float] = (0.012, 0.035)
    n_syllable_pool: int = 10
    template_seed: int = 20190

    def __post_init__(self) -> None:
        for name in ("n_channels", "n_classes", "n_speakers", "n_syllable_pool"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"SynthSHD: {name} must be a positive integer, got {v!r}")
        for name in ("n_channels", "n_classes", "n_speakers"):
            if getattr(self, name) > 65536:
                raise ValueError(f"SynthSHD: {name} must be <= 65536 (stored as uint16), got {getattr(self, name)}")
        h = self.n_heldout_speakers
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 0 <= h < self.n_speakers:
            raise ValueError(
                f"SynthSHD: n_heldout_speakers must be an integer in [0, n_speakers={self.n_speakers}), got {h!r}"
            )
        t = self.template_seed
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"SynthSHD: template_seed must be an integer >= 0, got {t!r}")

        def positive(name: str, v: object, allow_zero: bool = False, upper: float = math.inf) -> None:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v >= 0 if allow_zero else v > 0) and v <= upper
            if not ok:
                kind = "a finite number >= 0" if allow_zero else "a finite number > 0"
                raise ValueError(f"SynthSHD: {name} must be {kind}" + (f" and <= {upper}" if upper < math.inf else "")
                                 + f", got {v!r}")

        positive("duration", self.duration, upper=_FLOAT16_MAX)
        positive("rate_scale", self.rate_scale)
        positive("peak_rate", self.peak_rate)
        positive("noise_rate", self.noise_rate, allow_zero=True)
        positive("onset", self.onset, allow_zero=True, upper=0.9)
        positive("jitter", self.jitter, allow_zero=True)
        positive("pitch_std", self.pitch_std, allow_zero=True, upper=0.5)
        _check_range("tempo_range", self.tempo_range, 0.0, 10.0, open_lo=True)
        _check_range("loudness_range", self.loudness_range, 0.0, open_lo=True)
        _check_range("band_width", self.band_width, 0.0, 0.5, open_lo=True)


# ----------------------------------------------------------------------------- fixed templates
@dataclass(frozen=True)
class _Templates:
    """Per-class band tables (all rows of class k at ``start[k]:start[k+1]``) and speaker tables."""

    start: np.ndarray  # (n_classes + 1,) int64
    t_on: np.ndarray  # band onset, fraction of duration after the word onset (tempo 1)
    t_len: np.ndarray  # band length, fraction of duration (tempo 1)
    c0: np.ndarray  # centre at the band's onset, fraction of the channel axis
    c1: np.ndarray  # centre at the band's offset
    bow: np.ndarray  # parabolic bow of the glide (at mid-band), fraction of the axis
    sigma: np.ndarray  # width, fraction of the axis
    amp: np.ndarray  # relative amplitude (0, 1]
    spk_pitch: np.ndarray  # (n_speakers,) channel offset, fraction of the axis
    spk_tempo: np.ndarray
    spk_loud: np.ndarray
    spk_female: np.ndarray  # bool
    spk_age: np.ndarray  # years
    spk_height: np.ndarray  # metres


_FORMANT_CENTRES = ((0.08, 0.30), (0.25, 0.55), (0.45, 0.75), (0.65, 0.92))


def _syllable(rng: np.random.Generator, cfg: SynthSHD) -> list[tuple[float, ...]]:
    """One pool syllable: bands (on, off within the syllable in [0, 1], c0, c1, bow, sigma, amp)."""
    n_bands = int(rng.integers(2, 5))
    bands = []
    wlo, whi = cfg.band_width
    for k in range(n_bands):
        lo, hi = _FORMANT_CENTRES[k]
        c0 = rng.uniform(lo, hi)
        c1 = float(np.clip(c0 + rng.normal(0.0, 0.06), 0.02, 0.98))
        bow = rng.normal(0.0, 0.025)
        on = rng.uniform(0.0, 0.25)
        off = rng.uniform(0.75, 1.0)
        bands.append((on, off, c0, c1, bow, rng.uniform(wlo, whi), rng.uniform(0.5, 1.0)))
    if rng.random() < 0.3:  # fricative: broad high-frequency band, short, at the start or end
        at_start = rng.random() < 0.5
        on, off = (0.0, rng.uniform(0.3, 0.5)) if at_start else (rng.uniform(0.5, 0.7), 1.0)
        c = rng.uniform(0.75, 0.9)
        bands.append((on, off, c, c, 0.0, min(3.0 * whi, 0.5), rng.uniform(0.3, 0.6)))
    return bands


@functools.lru_cache(maxsize=16)
def _templates(cfg: SynthSHD) -> _Templates:
    """The class and speaker tables fixed by ``cfg.template_seed`` (independent of the sample seed).

    Only ``n_classes``, ``n_speakers``, the speaker ranges, ``band_width``, ``n_syllable_pool`` and
    ``template_seed`` matter; channel and time quantities are fractions, scaled when sampling.
    """
    n_classes, n_speakers, n_pool, pitch_std = cfg.n_classes, cfg.n_speakers, cfg.n_syllable_pool, cfg.pitch_std
    rng = np.random.default_rng([int(cfg.template_seed), 0x5D])
    pool = [_syllable(rng, cfg) for _ in range(n_pool)]
    rows: list[tuple[float, ...]] = []
    start = [0]
    seen: set[tuple[int, ...]] = set()
    for _ in range(n_classes):
        for _attempt in range(100):  # distinct syllable sequences (when the pool allows)
            n_syl = int(rng.integers(2, 5))
            seq = tuple(int(s) for s in rng.integers(0, n_pool, n_syl))
            if seq not in seen:
                break
        seen.add(seq)
        word_len = rng.uniform(0.4, 0.7)
        shares = rng.dirichlet(np.full(n_syl, 4.0)) * word_len
        t = 0.0
        for s, share in zip(seq, shares, strict=True):
            for on, off, c0, c1, bow, sig, amp in pool[s]:
                d = rng.normal(0.0, 0.02)  # per-class variant of the shared syllable
                rows.append((
                    t + on * share, (off - on) * share,
                    float(np.clip(c0 + d, 0.02, 0.98)), float(np.clip(c1 + d + rng.normal(0.0, 0.015), 0.02, 0.98)),
                    bow + rng.normal(0.0, 0.01), sig * rng.uniform(0.8, 1.25), amp * rng.uniform(0.8, 1.2),
                ))
            t += share * rng.uniform(0.9, 1.1)  # small gaps / overlaps between syllables
        start.append(len(rows))
    tab = np.array(rows, dtype=np.float64).reshape(-1, 7)
    female = np.arange(n_speakers) % 2 == 0
    rng.shuffle(female)
    pitch = np.where(female, 1.0, -1.0) * pitch_std + rng.normal(0.0, 0.5 * pitch_std, n_speakers)
    tpl = _Templates(
        start=np.asarray(start, dtype=np.int64),
        t_on=tab[:, 0], t_len=tab[:, 1], c0=tab[:, 2], c1=tab[:, 3], bow=tab[:, 4], sigma=tab[:, 5],
        amp=np.minimum(tab[:, 6], 1.0),
        spk_pitch=pitch,
        spk_tempo=rng.uniform(*cfg.tempo_range, n_speakers),
        spk_loud=rng.uniform(*cfg.loudness_range, n_speakers),
        spk_female=female,
        spk_age=rng.integers(20, 60, n_speakers).astype(np.uint16),
        spk_height=np.round(np.where(female, 1.66, 1.79) + rng.normal(0.0, 0.06, n_speakers), 2),
    )
    for arr in vars(tpl).values():
        arr.setflags(write=False)  # shared through the cache
    return tpl


def class_names(config: SynthSHD) -> list[str]:
    """Class names ``synth-0``, ``synth-1``, ... (SHD's ``extra/keys``)."""
    return [f"synth-{k}" for k in range(config.n_classes)]


def speaker_split(config: SynthSHD) -> tuple[np.ndarray, np.ndarray]:
    """``(train_speakers, test_speakers)``: test has every speaker, train lacks the held-out ones."""
    n_train = config.n_speakers - config.n_heldout_speakers
    return np.arange(n_train, dtype=np.int64), np.arange(config.n_speakers, dtype=np.int64)


# ----------------------------------------------------------------------------- sampling
def _check_int(name: str, v: object, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _sample_chunk(
    cfg: SynthSHD, labels: np.ndarray, spk: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat times (s, sorted per sample), int32 channels and per-sample counts for one chunk."""
    tpl = _templates(cfg)
    m = labels.size
    n_ch, dur = cfg.n_channels, cfg.duration
    # per-sample jitter
    tempo = tpl.spk_tempo[spk] * np.exp(rng.normal(0.0, 0.04, m))
    onset = cfg.onset * dur + rng.normal(0.0, cfg.jitter, m)
    pitch = tpl.spk_pitch[spk] + rng.normal(0.0, 0.004, m)
    loud = tpl.spk_loud[spk] * np.exp(rng.normal(0.0, 0.15, m))
    # one row per (sample, band), grouped by sample; sample b owns rows first[b]:first[b+1]
    nb = tpl.start[labels + 1] - tpl.start[labels]
    row_s = np.repeat(np.arange(m), nb)
    first = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(nb, out=first[1:])
    band = tpl.start[labels][row_s] + (np.arange(row_s.size) - first[row_s])
    nr = row_s.size
    tw = tempo[row_s]
    t0 = onset[row_s] + tw * tpl.t_on[band] * dur + rng.normal(0.0, 0.5 * cfg.jitter, nr)
    tlen = tw * tpl.t_len[band] * dur
    c0 = (tpl.c0[band] + pitch[row_s] + rng.normal(0.0, 0.004, nr)) * n_ch
    dc = (tpl.c1[band] - tpl.c0[band]) * n_ch
    bow4 = 4.0 * tpl.bow[band] * n_ch
    sig = tpl.sigma[band] * n_ch
    amp = cfg.rate_scale * cfg.peak_rate * tpl.amp[band] * loud[row_s] * np.exp(rng.normal(0.0, 0.2, nr))
    # expected count: amp * (int env dt = tlen / 2) * (int gauss dc = sig sqrt(2 pi))
    counts = rng.poisson(amp * 0.5 * tlen * sig * math.sqrt(2.0 * math.pi))
    n_noise = rng.poisson(cfg.rate_scale * cfg.noise_rate * n_ch * dur, m)
    return _events(rng, first, counts, n_noise, t0, tlen, c0, dc, bow4, sig, float(dur), int(n_ch))


@njit(cache=True)
def _events(
    rng: np.random.Generator, first: np.ndarray, counts: np.ndarray, n_noise: np.ndarray, t0: np.ndarray,
    tlen: np.ndarray, c0: np.ndarray, dc: np.ndarray, bow4: np.ndarray, sig: np.ndarray, dur: float, n_ch: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the events of every band row and the background, drop those outside the window, sort per sample.

    Sample b owns rows ``first[b]:first[b+1]``; row r has ``counts[r]`` events, sample b
    ``n_noise[b]`` background events. Returns flat times (s), int32 channels and counts per sample.
    """
    m = first.size - 1
    total = counts.sum() + n_noise.sum()
    times = np.empty(total, dtype=np.float64)
    units = np.empty(total, dtype=np.int32)
    n_per = np.zeros(m, dtype=np.int64)
    t_cap = np.nextafter(dur, 0.0)
    pos = 0
    for b in range(m):
        lo = pos
        for r in range(first[b], first[b + 1]):
            for _ in range(counts[r]):
                x = 0.5 * (rng.random() + rng.random())  # triangular envelope on [0, 1]
                t = t0[r] + x * tlen[r]
                c = np.rint(c0[r] + x * (dc[r] + bow4[r] * (1.0 - x)) + sig[r] * rng.standard_normal())
                if t >= 0.0 and t < dur and c >= 0.0 and c < n_ch:
                    times[pos] = t
                    units[pos] = np.int32(c)
                    pos += 1
        for _ in range(n_noise[b]):
            times[pos] = min(rng.random() * dur, t_cap)  # random() * dur may round up to dur
            units[pos] = np.int32(rng.integers(0, n_ch))
            pos += 1
        _sort_by_time(times[lo:pos], units[lo:pos], dur)
        n_per[b] = pos - lo
    return times[:pos].copy(), units[:pos].copy(), n_per


@njit(cache=True)
def _sort_by_time(t: np.ndarray, u: np.ndarray, dur: float) -> None:
    """Sort (t, u) by t in place (ties by u), t in [0, dur): bucket pass (about 2 events a bucket), then insertion."""
    n = t.size
    if n < 2:
        return
    nb = n // 2 + 1
    scale = nb / dur
    fill = np.zeros(nb + 1, dtype=np.int64)
    key = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = min(int(t[i] * scale), nb - 1)
        key[i] = k
        fill[k + 1] += 1
    for k in range(nb):
        fill[k + 1] += fill[k]
    ts = np.empty(n, dtype=np.float64)
    us = np.empty(n, dtype=np.int32)
    for i in range(n):
        j = fill[key[i]]
        ts[j] = t[i]
        us[j] = u[i]
        fill[key[i]] = j + 1
    for i in range(1, n):  # buckets are in order: the insertion sort only moves events inside a bucket
        tv, uv = ts[i], us[i]
        j = i - 1
        while j >= 0 and (ts[j] > tv or (ts[j] == tv and us[j] > uv)):
            ts[j + 1] = ts[j]
            us[j + 1] = us[j]
            j -= 1
        ts[j + 1] = tv
        us[j + 1] = uv
    t[:] = ts
    u[:] = us


def _sample(cfg: SynthSHD, labels: np.ndarray, spk: np.ndarray, rng: np.random.Generator) -> SpikeBatch:
    """Spikes for the given labels and speakers (see the module docstring), chunk by chunk."""
    parts = [
        _sample_chunk(cfg, labels[lo:lo + _CHUNK], spk[lo:lo + _CHUNK], rng) for lo in range(0, labels.size, _CHUNK)
    ]
    counts = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    offsets = np.zeros(labels.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    times = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    units = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
    return SpikeBatch.from_arrays(times, units, offsets, cfg.n_channels)


def _draw_labels_speakers(
    cfg: SynthSHD, n: int, speakers: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.arange(n, dtype=np.int64) % cfg.n_classes)  # balanced classes
    spk = speakers[rng.integers(0, speakers.size, n)] if n else np.zeros(0, np.int64)
    return labels, spk.astype(np.int64)


def _speakers_arg(cfg: SynthSHD, speakers: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if speakers is None:
        return np.arange(cfg.n_speakers, dtype=np.int64)
    arr = np.asarray(speakers).reshape(-1)
    if arr.size == 0:
        raise ValueError("speakers must name at least one speaker")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= cfg.n_speakers:
        raise ValueError(f"speakers must be integers in [0, {cfg.n_speakers}), got {speakers!r}")
    return np.unique(arr.astype(np.int64))


def synth_shd_samples(
    config: SynthSHD, n: int, seed: int, speakers: Sequence[int] | None = None
) -> tuple[SpikeBatch, np.ndarray, np.ndarray]:
    """``n`` synthetic samples: ``(batch, labels, speakers)`` (times in s, in [0, duration)).

    Classes are balanced (each occurs ``n // n_classes`` or one more times, shuffled); speakers
    are drawn uniformly from ``speakers`` (default: all). Class and speaker templates come from
    ``config.template_seed``; ``seed`` drives everything else (same seed, same bits). Labels and
    speakers are int64 arrays of shape (n,); the batch has ``n_units = config.n_channels``.
    """
    if not isinstance(config, SynthSHD):
        raise ValueError(f"config must be a SynthSHD, got {type(config).__name__}")
    n = _check_int("n", n)
    seed = _check_int("seed", seed)
    spk_pool = _speakers_arg(config, speakers)
    rng = np.random.default_rng(seed)
    labels, spk = _draw_labels_speakers(config, n, spk_pool, rng)
    return _sample(config, labels, spk, rng), labels, spk


# ----------------------------------------------------------------------------- SHD files
def _float16_below(duration: float) -> np.float16:
    """The largest float16 strictly below ``duration`` (s)."""
    m = np.float16(duration)
    while float(m) >= duration:
        m = np.nextafter(m, np.float16(0.0))
    return m


def _write_split(
    path: Path, cfg: SynthSHD, n: int, seed: int, split: int, speakers: np.ndarray,
    tick: Callable[[int], None],
) -> None:
    tpl = _templates(cfg)
    t_cap = _float16_below(cfg.duration)
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "exactsnn.data.synthetic"
        f.attrs["config"] = json.dumps(asdict(cfg))
        f.attrs["seed"] = int(seed)
        g = f.create_group("spikes")
        ds_t = g.create_dataset("times", shape=(n,), dtype=h5py.vlen_dtype(np.dtype(np.float16)))
        ds_u = g.create_dataset("units", shape=(n,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
        labels_ds = f.create_dataset("labels", shape=(n,), dtype=np.uint16)
        extra = f.create_group("extra")
        spk_ds = extra.create_dataset("speaker", shape=(n,), dtype=np.uint16)
        extra.create_dataset("keys", data=np.array([k.encode() for k in class_names(cfg)]))
        meta = extra.create_group("meta_info")
        meta.create_dataset("gender", data=np.array([b"female" if w else b"male" for w in tpl.spk_female]))
        meta.create_dataset("age", data=tpl.spk_age)
        meta.create_dataset("body_height", data=tpl.spk_height)
        for k, lo in enumerate(range(0, n, _CHUNK)):
            hi = min(n, lo + _CHUNK)
            rng = np.random.default_rng([int(seed), split, k])
            labels, spk = _draw_labels_speakers(cfg, hi - lo, speakers, rng)
            times, units, n_per = _sample_chunk(cfg, labels, spk, rng)  # sorted per sample
            t16 = np.minimum(times.astype(np.float16), t_cap)  # monotone: stays sorted per sample
            u16 = units.astype(np.uint16)
            offsets = np.zeros(hi - lo + 1, dtype=np.int64)
            np.cumsum(n_per, out=offsets[1:])
            t_obj = np.empty(hi - lo, dtype=object)
            u_obj = np.empty(hi - lo, dtype=object)
            for b in range(hi - lo):
                a, z = offsets[b], offsets[b + 1]
                t_obj[b] = t16[a:z]
                u_obj[b] = u16[a:z]
            ds_t.write_direct(t_obj, dest_sel=np.s_[lo:hi])
            ds_u.write_direct(u_obj, dest_sel=np.s_[lo:hi])
            labels_ds[lo:hi] = labels.astype(np.uint16)
            spk_ds[lo:hi] = spk.astype(np.uint16)
            tick(hi - lo)


def write_synth_shd(
    out_dir: str | os.PathLike,
    config: SynthSHD | None = None,
    n_train: int = 8156,
    n_test: int = 2264,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, Path]:
    """Write ``shd_train.h5`` and ``shd_test.h5`` (SHD layout, times in s as float16) to ``out_dir``.

    Train samples come from the speakers ``speaker_split(config)[0]``, test samples from all
    speakers (the ``n_heldout_speakers`` highest ids only appear in the test file). Samples are
    generated and written in chunks of a fixed size, so memory stays bounded; ``seed`` fixes the
    bits. ``progress(n_done, n_total)`` is called after each chunk. Returns
    ``{"train": path, "test": path}``; existing files are overwritten.
    """
    cfg = SynthSHD() if config is None else config
    if not isinstance(cfg, SynthSHD):
        raise ValueError(f"config must be a SynthSHD, got {type(cfg).__name__}")
    n_train = _check_int("n_train", n_train)
    n_test = _check_int("n_test", n_test)
    seed = _check_int("seed", seed)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable (n_done, n_total) or None")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    total = n_train + n_test
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, total)

    train_spk, test_spk = speaker_split(cfg)
    paths = {"train": out / "shd_train.h5", "test": out / "shd_test.h5"}
    _write_split(paths["train"], cfg, n_train, seed, 0, train_spk, tick)
    _write_split(paths["test"], cfg, n_test, seed, 1, test_spk, tick)
    return paths
