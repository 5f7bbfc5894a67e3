"""The toy Greatest Hits: `python data.py toy` synthesises a dataset file of the real one's shape.

The real Greatest Hits (about 20 GB) cannot be downloaded everywhere, so this makes a stand-in of the same
shape, deterministic from its seed:
- scenes: 64% outdoor, 36% indoor (paper 3.1); 1-3 materials per frame (about 1.7 on average), drawn from
  the scene's pool with co-appearance affinities (grass with leaf and dirt, tile with ceramic, ...);
- frames: each material a procedural texture family (palette, grain or pattern, noise) filling a region
  of the frame, plus per-video lighting, tint, sensor noise and a drumstick;
- sounds: each hit a modal impact (damped sinusoids) or noise burst shaped by the material's physics
  (metal and glass ring long and high; wood and plastic short and mid; dirt, leaf, grass, cloth, carpet
  damped and noisy; gravel and plastic bag crunchy trains of grains; water a splash with rising bubble
  chirps), with per-object modes, per-hit variation, per-video gain, background noise and sometimes a
  neighbouring hit inside the same second;
- class frequencies imbalanced like the paper's Figure 2: wood and metal the most common, dirt rare;
- stratified splits: the split of each video is drawn first, and in each split the first 17 videos (in a
  seeded order) are each given one of the 17 materials as a secondary material (`anchors`), so that every
  split of 17 videos or more holds every material, and the rest draw from their scene alone. As in the
  paper's Figure 2, the three splits then have about the same class distribution.

The frames are meant to be hard only where the real ones are: every material in a frame fills at least 15%
of it (none is hidden behind another), and the lighting varies by +-20% and tints by about 3%, enough to
vary the look of a material without swamping its colour and pattern at 32 pixels.

Learnable but not trivially separable. These pairs are made confusable on purpose, in sound and in look:
dirt/leaf (soft organic thuds, brown palettes), tile/ceramic (short bright rings, the same glazes),
cloth/carpet (muffled noisy thuds, soft fibrous textures), and less so wood/plastic, metal/glass,
gravel/plastic-bag. The parameters below were written from the physics described above and were not tuned
to make any result of the paper come out.

Run `python data.py toy --help` for the sizes. The default (data.TOY_DEFAULTS: 72 train / 60 validation /
1000 test videos, 32-pixel frames, 22,050 Hz) is what every script uses when given no --data. It departs
from the paper's split shares (60/15/25%) on purpose: a run's number is only as precise as its test split,
and a toy's test video costs a forward pass to score, not a training step. Over a few test videos a trained
model's score moves from one draw of test videos to the next by as much as the differences a student is
asked to measure (docs/results.md measures it), so the test split is large and each run prints its 95%
interval; validation is large enough for its per-epoch curve to show learning; the training set is what a
laptop trains in minutes (its size chosen from the curve of test accuracy against training videos in
docs/results.md). `python data.py toy --videos 977 --size 224` makes the paper's shape (586/147/244 videos,
each video's split drawn at random), and `--splits TRAIN VAL TEST` any other.
"""

import argparse
import os
import time

import numpy as np
import torch

from dataset_sources import summary
from dataset_sources.contract import (
    CLIPS_PER_VIDEO,
    FORMAT_VERSION,
    MATERIAL_ID,
    MATERIALS,
    NUM_MATERIALS,
    SAMPLE_RATE,
    TOY_DEFAULTS,
    check_flags,
    toy_path,
)
from safe_files.ownership import SIGNATURE, DataError, atomic_save, check_out


def split_sizes(videos):
    """(train, val, test) for `--videos`: the paper's shares (test a quarter, 244 of 977; validation 20% of
    the rest), but validation and test each at least min(17, videos // 4) videos, so that in a toy of 68
    videos or more each of them can show every one of the 17 materials (see `anchors`)."""
    floor = min(NUM_MATERIALS, videos // 4)
    test = max(round(videos * 244 / 977), floor)
    val = max(round((videos - test) * 0.2), floor)
    return videos - val - test, val, test


# Scenes (paper 3.1: 64% outdoor). Weight = how often a material is picked for a frame of that scene.
SHARED = {"wood": 3.0, "metal": 3.0, "plastic": 1.2, "paper": 0.8, "cloth": 0.7, "plastic-bag": 0.5}
SCENES = {
    "outdoor": {**SHARED, "grass": 2.2, "leaf": 2.4, "dirt": 0.35, "rock": 1.8, "gravel": 1.4, "water": 1.2},
    "indoor": {
        **SHARED,
        "plastic": 2.0,
        "paper": 1.4,
        "cloth": 1.2,
        "tile": 0.8,
        "ceramic": 1.2,
        "carpet": 1.4,
        "drywall": 1.8,
        "glass": 1.3,
    },
}
# Materials that are found together more often than their weights say (multiplies the weight by 3).
AFFINITY = [
    ("grass", "leaf"),
    ("leaf", "dirt"),
    ("grass", "dirt"),
    ("rock", "gravel"),
    ("rock", "water"),
    ("tile", "ceramic"),
    ("carpet", "cloth"),
    ("drywall", "wood"),
    ("glass", "metal"),
    ("paper", "plastic-bag"),
]
MATERIALS_PER_FRAME = [0.45, 0.40, 0.15]  # P(1), P(2), P(3): 1.7 on average

# Sound of each material: ("modal", (f_lo, f_hi) Hz, modes, (decay_lo, decay_hi) s, noise share, noise
# cutoff Hz), ("noisy", (f_lo, f_hi), modes, decays, noise share, cutoff range), ("crunch", grains range,
# burst length range s, cutoff range) or ("splash", ...). Ranges are drawn per object (video), then jittered
# per hit.
SOUNDS = {
    "plastic": ("modal", (400, 2000), 4, (0.02, 0.06), 0.30, (3000, 5000)),
    "drywall": ("modal", (150, 900), 4, (0.02, 0.05), 0.40, (1800, 3000)),
    "rock": ("modal", (800, 3500), 5, (0.008, 0.03), 0.45, (4000, 7000)),
    "metal": ("modal", (1500, 7000), 8, (0.25, 0.8), 0.05, (6000, 9000)),
    "leaf": ("noisy", (150, 600), 3, (0.03, 0.08), 0.85, (1500, 3000)),
    "grass": ("noisy", (100, 400), 3, (0.02, 0.06), 0.90, (2500, 4500)),
    "paper": ("noisy", (300, 1500), 3, (0.01, 0.04), 0.70, (3000, 6000)),
    "water": ("splash", (500, 1500), (2, 5), (0.05, 0.15), 0.0, (2000, 5000)),
    "gravel": ("crunch", (15, 40), (0.08, 0.2), (0.003, 0.006), 1.0, (3000, 7000)),
    "glass": ("modal", (2500, 8000), 4, (0.2, 0.6), 0.05, (6000, 9000)),
    "tile": ("modal", (1200, 4500), 5, (0.04, 0.12), 0.20, (5000, 7000)),
    "ceramic": ("modal", (1000, 4000), 5, (0.05, 0.15), 0.20, (5000, 7000)),
    "plastic-bag": ("crunch", (20, 60), (0.15, 0.35), (0.002, 0.004), 1.0, (5000, 9000)),
    "dirt": ("noisy", (80, 400), 3, (0.03, 0.08), 0.85, (1200, 2500)),
    "cloth": ("noisy", (80, 300), 3, (0.02, 0.05), 0.80, (600, 1500)),
    "wood": ("modal", (200, 1200), 5, (0.03, 0.10), 0.25, (2500, 4000)),
    "carpet": ("noisy", (80, 300), 3, (0.02, 0.06), 0.80, (500, 1400)),
}

# Look of each material: palette (RGB 0-1 base colours, one drawn per object) and pattern family.
LOOKS = {
    "plastic": (
        [(0.85, 0.15, 0.15), (0.15, 0.35, 0.85), (0.95, 0.85, 0.2), (0.2, 0.7, 0.3), (0.9, 0.9, 0.9)],
        "flat",
    ),
    "drywall": ([(0.88, 0.87, 0.82), (0.82, 0.82, 0.8), (0.9, 0.86, 0.78)], "speckle"),
    "rock": ([(0.5, 0.48, 0.45), (0.45, 0.4, 0.35), (0.6, 0.58, 0.55)], "blotch"),
    "metal": ([(0.62, 0.64, 0.68), (0.55, 0.56, 0.58), (0.72, 0.7, 0.66)], "brushed"),
    "leaf": ([(0.35, 0.5, 0.15), (0.55, 0.4, 0.15), (0.7, 0.55, 0.2), (0.45, 0.3, 0.15)], "scatter"),
    "grass": ([(0.25, 0.55, 0.15), (0.35, 0.6, 0.2), (0.45, 0.55, 0.2)], "blades"),
    "paper": ([(0.95, 0.94, 0.9), (0.92, 0.9, 0.82)], "smooth"),
    "water": ([(0.25, 0.4, 0.5), (0.3, 0.45, 0.4), (0.35, 0.42, 0.55)], "ripples"),
    "gravel": ([(0.55, 0.52, 0.48), (0.62, 0.58, 0.5), (0.45, 0.45, 0.45)], "pebbles"),
    "glass": ([(0.7, 0.82, 0.85), (0.75, 0.78, 0.8)], "reflect"),
    "tile": ([(0.9, 0.9, 0.88), (0.85, 0.78, 0.65), (0.7, 0.4, 0.3), (0.4, 0.55, 0.7)], "grid"),
    "ceramic": ([(0.9, 0.9, 0.88), (0.85, 0.78, 0.65), (0.7, 0.4, 0.3), (0.4, 0.55, 0.7)], "glossy"),
    "plastic-bag": ([(0.9, 0.9, 0.92), (0.2, 0.2, 0.22), (0.8, 0.3, 0.3)], "crinkle"),
    "dirt": ([(0.45, 0.33, 0.2), (0.5, 0.38, 0.25), (0.4, 0.3, 0.2)], "blotch"),
    "cloth": ([(0.6, 0.2, 0.25), (0.25, 0.3, 0.55), (0.5, 0.5, 0.45), (0.3, 0.45, 0.35)], "weave"),
    "wood": ([(0.6, 0.4, 0.2), (0.7, 0.5, 0.3), (0.5, 0.32, 0.18)], "grain"),
    "carpet": ([(0.6, 0.2, 0.25), (0.25, 0.3, 0.55), (0.5, 0.5, 0.45), (0.45, 0.35, 0.3)], "fibres"),
}


def smooth_noise(rng, size, cells):
    """(size, size) values in about [0, 1]: uniform noise on a (cells+1)^2 grid, bilinearly interpolated."""
    g = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False)
    i = t.astype(int)
    f = t - i
    rows = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]  # (size, cells+1)
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


# One branch per pattern family, each a few lines: a table, which reads better whole than split in parts.
def texture(name, size, rng):  # noqa: PLR0915
    """(3, size, size) float image of one object of material `name` (values about 0-1)."""
    palette, family = LOOKS[name]
    base = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.92, 1.08, 3)
    y, x = np.mgrid[0:size, 0:size] / size  # (S, S) each, in [0, 1)
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)  # a rotated coordinate for oriented patterns
    v = -x * np.sin(angle) + y * np.cos(angle)
    fine = rng.random((size, size))
    if family == "flat":
        shade = (
            0.9
            + 0.2 * smooth_noise(rng, size, 2)
            + 0.3 * np.exp(-((x - rng.random()) ** 2 + (y - rng.random()) ** 2) / 0.02)
        )
    elif family == "speckle":
        shade = 0.95 + 0.05 * smooth_noise(rng, size, 3) + 0.08 * (fine - 0.5)
    elif family == "blotch":
        shade = 0.6 + 0.5 * smooth_noise(rng, size, 4) + 0.3 * smooth_noise(rng, size, 9) - 0.15
    elif family == "brushed":
        streaks = smooth_noise(rng, size, max(size // 2, 4))[0][None, :].repeat(size, 0)  # along one axis
        if rng.random() >= 0.5:  # across the other axis, half the time
            streaks = streaks.T
        shade = 0.8 + 0.25 * streaks + 0.35 * np.exp(-((u - rng.random()) ** 2) / 0.01)
    elif family == "scatter":  # leaves: coloured blobs over a darker ground
        shade = 0.55 + 0.1 * smooth_noise(rng, size, 4)
        img = base[:, None, None] * shade
        for _ in range(rng.integers(8, 16)):
            cx = rng.random()
            cy = rng.random()
            r = rng.uniform(0.06, 0.14)
            c = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.8, 1.2)
            blob = ((x - cx) / r) ** 2 + ((y - cy) / (0.6 * r)) ** 2 < 1
            img = np.where(blob[None], c[:, None, None], img)
        return img
    elif family == "blades":
        shade = (
            0.6
            + 0.6
            * smooth_noise(rng, size, max(size // 3, 6))[0][None, :]
            * (0.7 + 0.3 * smooth_noise(rng, size, 3))
            + 0.1 * (fine - 0.5)
        )
    elif family == "smooth":
        shade = 0.97 + 0.05 * smooth_noise(rng, size, 2)
        if rng.random() < 0.5:  # ruled paper
            shade = shade - 0.25 * (np.sin(2 * np.pi * v * rng.uniform(5, 8)) > 0.92)
    elif family == "ripples":
        phase = 2 * np.pi * (u * rng.uniform(4, 7) + 0.8 * smooth_noise(rng, size, 3))
        shade = 0.8 + 0.2 * np.sin(phase) + 0.5 * (np.sin(phase) > 0.95) * (fine > 0.5)
    elif family == "pebbles":  # nearest-neighbour upsampled random cells: little stones
        cells = max(size // 3, 6)
        stones = rng.uniform(0.5, 1.3, (cells, cells))
        idx = np.arange(size) * cells // size
        shade = stones[idx][:, idx] + 0.1 * (fine - 0.5)
    elif family == "reflect":
        shade = 0.85 + 0.2 * x + 0.4 * (np.abs(np.sin(2 * np.pi * (u * rng.uniform(1, 2)))) > 0.93)
    elif family == "grid":
        period = rng.uniform(3, 5)
        gu, gv = (x * period) % 1, (y * period) % 1
        grout = (gu < 0.1) | (gv < 0.1)
        shade = 0.95 + 0.1 * smooth_noise(rng, size, 3) - 0.45 * grout
    elif family == "glossy":
        cx, cy = rng.random(), rng.random()
        shade = (
            0.85 + 0.1 * smooth_noise(rng, size, 3) + 0.4 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.03)
        )
    elif family == "crinkle":
        ridges = np.abs(smooth_noise(rng, size, 6) - 0.5) + np.abs(smooth_noise(rng, size, 11) - 0.5)
        shade = 0.6 + 1.0 * ridges
    elif family == "weave":
        f = rng.uniform(6, 10)
        shade = (
            0.85 + 0.15 * np.sign(np.sin(2 * np.pi * u * f) * np.sin(2 * np.pi * v * f)) + 0.1 * (fine - 0.5)
        )
    elif family == "fibres":
        shade = 0.8 + 0.35 * (fine - 0.5) + 0.15 * smooth_noise(rng, size, 4)
    elif family == "grain":
        warp = 0.6 * smooth_noise(rng, size, 3)
        shade = 0.8 + 0.2 * np.sin(2 * np.pi * (u * rng.uniform(6, 12) + warp)) + 0.05 * (fine - 0.5)
    else:
        raise ValueError(family)
    return base[:, None, None] * shade[None]


def make_frame(materials, size, rng):
    """(3, size, size) uint8: one region per material (a weighted Voronoi cell), lighting, noise, a stick."""
    y, x = np.mgrid[0:size, 0:size] / size
    weights = np.array([1.3] + [1.0] * (len(materials) - 1))  # the first material fills the most
    for _ in range(100):  # every material visible: at least 15% of the frame (redrawn until so)
        centres = rng.random((len(materials), 2))
        dist = np.stack([np.hypot(x - cx, y - cy) / w for (cx, cy), w in zip(centres, weights, strict=True)])
        region = dist.argmin(0)  # (S, S) which material each pixel shows
        if np.bincount(region.flatten(), minlength=len(materials)).min() >= 0.15 * size * size:
            break
    img = np.zeros((3, size, size))
    for i, name in enumerate(materials):
        img = np.where(region[None] == i, texture(name, size, rng), img)
    # Per-video lighting: brightness, colour tint, a soft gradient across the frame.
    light = rng.uniform(0.8, 1.2) * (1 + rng.normal(0, 0.03, 3))[:, None, None]
    gx, gy = rng.normal(0, 0.15, 2)  # the gradient's slope across and down
    img = img * light * (1 + gx * (x - 0.5) + gy * (y - 0.5))[None]
    # The drumstick: a dark wooden bar entering from the frame's edge (paper: static scene but for it).
    a = rng.uniform(-0.6, 0.6)  # its angle
    ox = rng.uniform(0.2, 0.8)  # where it meets the bottom edge
    stick = (np.abs((x - ox) * np.cos(a) + (y - 1) * np.sin(a)) < 0.035) & (y > rng.uniform(0.3, 0.7))
    img = np.where(stick[None], np.array([0.35, 0.22, 0.12])[:, None, None], img)
    img = img + rng.normal(0, 0.03, img.shape)  # sensor noise
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def lowpass_noise(rng, n, cutoff, sample_rate):
    """n samples of white noise through a 2nd-order-like low-pass response (FFT domain), unit RMS."""
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    out = np.fft.irfft(spec / np.sqrt(1 + (f / cutoff) ** 4), n)
    return out / (out.std() + 1e-12)


def make_object(name, rng):
    """Per-video parameters of one object's sound: its modes and noise colour (kept across its hits)."""
    kind, a, b, c, noise, cutoff = SOUNDS[name]
    obj = {"kind": kind, "noise": noise, "cutoff": rng.uniform(*cutoff)}
    if kind in ("modal", "noisy"):
        obj["freqs"] = np.sort(np.exp(rng.uniform(np.log(a[0]), np.log(a[1]), b)))
        obj["decays"] = rng.uniform(*c, b)
        obj["amps"] = rng.uniform(0.3, 1.0, b)
    elif kind == "crunch":
        obj["grains"] = rng.integers(*a)
        obj["length"] = rng.uniform(*b)
        obj["grain_decay"] = rng.uniform(*c)
    else:  # splash
        obj["bubble_freq"] = a
        obj["bubbles"] = b
        obj["decay"] = rng.uniform(*c)
    return obj


def hit_sound(obj, n, sample_rate, rng):
    """One impact of `obj`, starting at sample 0, n samples long, peak about 1."""
    t = np.arange(n) / sample_rate
    if obj["kind"] in ("modal", "noisy"):
        freqs = obj["freqs"] * (1 + rng.normal(0, 0.02, len(obj["freqs"])))  # per-hit variation
        amps = obj["amps"] * rng.uniform(0.6, 1.0, len(freqs))
        modes = (
            amps[:, None]
            * np.exp(-t / obj["decays"][:, None])
            * np.sin(2 * np.pi * freqs[:, None] * t + rng.uniform(0, 2 * np.pi, (len(freqs), 1)))
        ).sum(0)
        modes /= np.abs(modes).max() + 1e-12
        burst = lowpass_noise(rng, n, obj["cutoff"], sample_rate) * np.exp(-t / (obj["decays"].mean() * 0.7))
        burst /= np.abs(burst).max() + 1e-12
        sound = (1 - obj["noise"]) * modes + obj["noise"] * burst
    elif obj["kind"] == "crunch":  # a train of short grains: gravel, plastic bag
        train = np.zeros(n)
        times = (rng.random(obj["grains"]) ** 1.5 * obj["length"] * sample_rate).astype(int)
        amps = rng.uniform(0.2, 1.0, obj["grains"]) * rng.choice([-1, 1], obj["grains"])
        np.add.at(train, times[times < n], amps[times < n])  # grains past the clip's end are cut off
        k = int(obj["grain_decay"] * 6 * sample_rate)
        kernel = rng.normal(size=k) * np.exp(-np.arange(k) / (obj["grain_decay"] * sample_rate))
        sound = np.convolve(train, kernel)[:n]
        spec = np.fft.rfft(sound)
        f = np.fft.rfftfreq(n, 1 / sample_rate)
        sound = np.fft.irfft(spec / np.sqrt(1 + (f / obj["cutoff"]) ** 4), n)
    else:  # water: a splash of noise plus bubbles whose pitch rises as they shrink
        sound = lowpass_noise(rng, n, obj["cutoff"], sample_rate) * np.exp(-t / obj["decay"])
        sound /= np.abs(sound).max() + 1e-12
        for _ in range(rng.integers(*obj["bubbles"])):
            start = rng.uniform(0, 0.15)
            tb = np.clip(t - start, 0, None)
            f0 = rng.uniform(*obj["bubble_freq"])
            phase = 2 * np.pi * f0 * (tb + 2.0 * tb**2)  # f(t) = f0 (1 + 4 t)
            sound += (
                rng.uniform(0.3, 0.8) * (t >= start) * np.exp(-tb / rng.uniform(0.02, 0.06)) * np.sin(phase)
            )
    return sound / (np.abs(sound).max() + 1e-12)


def make_clip(obj, others, n, sample_rate, rng, gain, noise_level):
    """One second, the hit at its centre; sometimes a quieter neighbouring hit of the same video."""
    clip = np.zeros(n)
    centre = n // 2
    clip[centre:] = hit_sound(obj, n - centre, sample_rate, rng) * rng.uniform(0.6, 1.0)
    if rng.random() < 0.3:  # the drumstick often hits again within half a second
        other = others[rng.integers(len(others))]
        start = centre + int(rng.choice([-1, 1]) * rng.uniform(0.25, 0.45) * sample_rate)
        clip[start:] += hit_sound(other, n - start, sample_rate, rng) * rng.uniform(0.2, 0.5)
    background = lowpass_noise(rng, n, rng.uniform(300, 3000), sample_rate) * noise_level
    return gain * clip + background


def anchors(split, seed):
    """[material name or None] per video: in each split, the first 17 videos (a seeded order) are each given
    one of the 17 materials, so that a split of 17 videos or more shows every material at least once
    (stratified, as the paper's Figure 2 shows for Greatest Hits). The rest draw from their scene alone."""
    anchor = [None] * len(split)
    for s in range(3):
        videos = np.random.default_rng([seed, 17, s]).permutation(np.flatnonzero(split == s))
        materials = np.random.default_rng([seed, 18, s]).permutation(NUM_MATERIALS)
        for v, m in zip(videos, materials, strict=False):  # the first 17 videos, or all of fewer
            anchor[v] = MATERIALS[m]
    return anchor


def pick_materials(anchor, rng):
    """(outdoor?, the materials in view, main material first): the scene (64% outdoor, paper 3.1, or the
    anchor's own scene), then 1-3 materials drawn from its pool, weighed up by their affinity with those
    already drawn. The anchor, if any, is drawn first and then moved last: it is never the main material."""
    if anchor is None or (anchor in SCENES["outdoor"]) == (anchor in SCENES["indoor"]):
        outdoor = rng.random() < 0.64
    else:
        outdoor = anchor in SCENES["outdoor"]
    pool = SCENES["outdoor" if outdoor else "indoor"]
    names = list(pool)
    weights = np.array(list(pool.values()))
    chosen = []
    if anchor is not None:
        chosen = [anchor]
    for _ in range(rng.choice(3, p=MATERIALS_PER_FRAME) + 1 - len(chosen)):
        w = weights * np.array([affinity(m, chosen) for m in names])
        chosen.append(names[rng.choice(len(names), p=w / w.sum())])
    if anchor is not None:
        chosen = chosen[1:] + chosen[:1]
    return outdoor, chosen


def affinity(material, chosen):
    """How much more likely `material` is beside the `chosen` ones: 0 when already chosen, else 3 for each
    AFFINITY pair it makes with one of them."""
    if material in chosen:
        return 0
    pairs = sum((material, c) in AFFINITY or (c, material) in AFFINITY for c in chosen)
    return 3**pairs


def make_sounds(chosen, n, sample_rate, rng):
    """(clips (10, n) int16, their materials [name]): ten hits, each material in view at least once, the rest
    mostly on the main (largest) material, in a random order."""
    hit_weights = np.array([2.0] + [1.0] * (len(chosen) - 1))
    more = rng.choice(len(chosen), CLIPS_PER_VIDEO - len(chosen), p=hit_weights / hit_weights.sum())
    hits = chosen + [chosen[i] for i in more]
    hits = [hits[i] for i in rng.permutation(CLIPS_PER_VIDEO)]
    objects = {m: make_object(m, rng) for m in chosen}
    gain = rng.uniform(0.2, 0.9)  # the recording's level
    noise_level = rng.uniform(0.003, 0.03)
    clips = np.zeros((CLIPS_PER_VIDEO, n), np.int16)
    for c, m in enumerate(hits):
        clip = make_clip(objects[m], list(objects.values()), n, sample_rate, rng, gain, noise_level)
        clips[c] = np.clip(clip * 32767, -32768, 32767).round().astype(np.int16)
    return clips, hits


def make_toy(
    videos=None,
    size=TOY_DEFAULTS["size"],
    seed=TOY_DEFAULTS["seed"],
    sample_rate=SAMPLE_RATE,
    splits=None,
):
    """The toy Greatest Hits as a dataset dict (see the module docstring). Deterministic from `seed`.

    The sizes: `videos`, shared out as the paper's split is (`split_sizes`) with each video's split drawn at
    random; or `splits`, (train, val, test) videos laid out test first, then validation, then training; or
    neither: the default toy's splits (TOY_DEFAULTS)."""
    if splits is None and videos is None:
        splits = TOY_DEFAULTS["splits"]
    if splits is None and videos < 10:
        raise DataError(f"--videos {videos}: the toy dataset needs at least 10 videos (3 splits)")
    if splits is not None and min(splits) < 1:
        raise DataError(f"--splits {' '.join(map(str, splits))}: every split needs at least one video")
    drawn = splits is None
    if drawn:
        splits = split_sizes(videos)
    train, val, test = splits
    videos = train + val + test
    if size < 32:
        raise DataError(f"--size {size}: frames need at least 32 pixels (VGG halves them five times)")
    n = sample_rate  # one second
    frames = np.zeros((videos, 3, size, size), np.uint8)
    labels = np.zeros((videos, NUM_MATERIALS), bool)
    clips = np.zeros((videos, CLIPS_PER_VIDEO, n), np.int16)
    clip_materials = np.zeros((videos, CLIPS_PER_VIDEO), np.int64)
    outdoor = np.zeros(videos, bool)
    split = np.zeros(videos, np.int8)  # 0 train
    if drawn:
        order = np.random.default_rng([seed, 977]).permutation(videos)
        split[order[train : train + val]] = 1
        split[order[train + val :]] = 2
    else:
        # The test videos first, then validation, then training: every video is drawn from its own stream, so
        # toys of one seed with the same test and validation sizes share those videos whatever their training
        # size (a curve against training videos is then measured on one test set).
        split[:test] = 2
        split[test : test + val] = 1
    anchor = anchors(split, seed)
    for v in range(videos):
        rng = np.random.default_rng([seed, v])  # each video from its own stream
        outdoor[v], chosen = pick_materials(anchor[v], rng)
        frames[v] = make_frame(chosen, size, rng)
        labels[v, [MATERIAL_ID[m] for m in chosen]] = True
        clips[v], hits = make_sounds(chosen, n, sample_rate, rng)
        clip_materials[v] = [MATERIAL_ID[m] for m in hits]
    return {
        "frames": torch.from_numpy(frames),
        "image_labels": torch.from_numpy(labels),
        "clips": torch.from_numpy(clips),
        "clip_materials": torch.from_numpy(clip_materials),
        "split": torch.from_numpy(split),
        "video_ids": [f"toy-{seed}-{v:04d}" for v in range(videos)],
        "sample_rate": sample_rate,
        "materials": list(MATERIALS),
        "source": "toy",
        "format_version": FORMAT_VERSION,
        "written_by": f"{SIGNATURE} data.py",  # the mark that lets data.py replace it (safe_files/)
        "seed": seed,
        "size": size,
        "outdoor": torch.from_numpy(outdoor),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="data.py toy",
        description="Synthesise the toy Greatest Hits: frames, ten hit sounds per "
        "video, labels and splits, deterministic from --seed.",
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--videos",
        type=int,
        default=None,
        help="number of videos, at least 10, shared out as the paper's split is (977: the paper's "
        "586/147/244)",
    )
    sizes.add_argument(
        "--splits",
        type=int,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        default=None,
        help="videos in each split (default, without --videos: %s, the default toy)"
        % " ".join(map(str, TOY_DEFAULTS["splits"])),
    )
    parser.add_argument(
        "--size",
        type=int,
        default=TOY_DEFAULTS["size"],
        help="frame and spectrogram side in pixels, at least 32 (default %(default)s; the paper uses 224)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=TOY_DEFAULTS["seed"],
        help="generator seed, 0 or more (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output file (default data/toy-<train>-<val>-<test>-s<size>-seed<seed>.pt, which the "
        "scripts use when given no --data and the default sizes)",
    )
    args = parser.parse_args(argv)
    splits = TOY_DEFAULTS["splits"]
    if args.splits is not None:
        splits = tuple(args.splits)
    if args.videos is not None:
        splits = split_sizes(max(args.videos, 10))  # the file's name; fewer than 10 is refused by make_toy
    out = args.out
    if out is None:
        out = toy_path(splits, args.size, args.seed, args.videos)
    start = time.time()
    try:
        check_flags(args)  # --seed: the range every script accepts (numpy's generators take none below 0)
        check_out(out)  # before the work: a file that is not ours, or a place we cannot write, is refused now
        if args.videos is not None:
            d = make_toy(args.videos, args.size, args.seed)
        else:
            d = make_toy(size=args.size, seed=args.seed, splits=splits)
        atomic_save(d, out)
    except DataError as e:
        parser.exit(2, f"error: {e}\n")
    except MemoryError:
        gib = sum(splits) * (3 * args.size**2 + CLIPS_PER_VIDEO * 2 * SAMPLE_RATE) / 2**30
        sizes = (
            f"--videos {args.videos}" if args.videos is not None else f"--splits {' '.join(map(str, splits))}"
        )
        parser.exit(
            2,
            f"error: {sizes} --size {args.size} does not fit in memory (about {gib:.0f} GiB): choose fewer "
            f"videos or smaller frames\n",
        )
    except KeyboardInterrupt:  # nothing was half-written (atomic_save): say so, without a traceback
        parser.exit(130, f"interrupted: nothing written (an existing {out} is unchanged)\n")
    print(f"wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB) in {time.time() - start:.1f} s")
    print("\n".join(summary(d)))
