"""What the examples are: the dataset file, the toy Greatest Hits, spectrograms, the image transform, loading.

Every script reads the same kind of file, written by `torch.save` and read back with
`torch.load(path, weights_only=True)`: a plain dict of tensors (see `check_dataset` for the exact contract).

    frames          uint8 (V, 3, S, S)   one RGB frame per video
    image_labels    bool  (V, 17)        every material present in the video (multi-label, paper 3.3.2)
    clips           int16 (V, 10, N)     ten one-second mono clips per video, each centred on a hit (3.1)
    clip_materials  int64 (V, 10)        the material ID of each clip (Table 1 order)
    split           int8  (V,)           0 train, 1 validation, 2 test, by video
    video_ids, sample_rate, materials, source ('toy' or 'greatest-hits'), format_version, seed, size

Two sources write it: `python data.py toy` (a synthetic stand-in, below) and, for the real recordings,
`python data.py prepare ROOT`. Scripts call `load()`, which puts the whole dataset on the training device
once -- frames as uint8, clips already turned into spectrograms -- so that a batch is an index slice.

The toy dataset
---------------
The real Greatest Hits (about 20 GB) cannot be downloaded everywhere, so `python data.py toy` synthesises a
dataset of the same shape, deterministic from its seed:
- scenes: 64% outdoor, 36% indoor (paper 3.1); 1-3 materials per frame (about 1.7 on average), drawn from
  the scene's pool with co-appearance affinities (grass with leaf and dirt, tile with ceramic, ...);
- frames: each material a procedural texture family (palette, grain or pattern, noise) filling a region
  of the frame, plus per-video lighting, tint, sensor noise and a drumstick;
- sounds: each hit a modal impact (damped sinusoids) or noise burst shaped by the material's physics
  (metal and glass ring long and high; wood and plastic short and mid; dirt, leaf, grass, cloth, carpet
  damped and noisy; gravel and plastic bag crunchy trains of grains; water a splash with rising bubble
  chirps), with per-object modes, per-hit variation, per-video gain, background noise and sometimes a
  neighbouring hit inside the same second;
- class frequencies imbalanced like the paper's Figure 2: wood and metal the most common, dirt rare.

Learnable but not trivially separable. These pairs are made confusable on purpose, in sound and in look:
dirt/leaf (soft organic thuds, brown palettes), tile/ceramic (short bright rings, the same glazes),
cloth/carpet (muffled noisy thuds, soft fibrous textures), and less so wood/plastic, metal/glass,
gravel/plastic-bag. The parameters below were written from the physics described above and were not tuned
to make any result of the paper come out.

Run `python data.py toy --help` for the sizes. The default (60 videos: 36 train / 9 val / 15 test, 32-pixel
frames, 22,050 Hz) is sized so that `python tt_agg.py --backbone resnet` trains its 30 epochs within 5 minutes
on 2 CPU cores (measured: 64 videos took 5 min 0 s, about 83 pairs/s). That is few frames for the image
tower to learn 17 textures from; `python data.py toy --videos 160` makes a larger toy (pass it with --data)
and `python data.py toy --videos 977 --size 224` gives the paper's shape (586/147/244 videos) for GPUs.
"""
import argparse
import glob
import math
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

# Table 1 of the paper: material IDs. Defined here once; every other file uses these.
MATERIALS = ["plastic", "drywall", "rock", "metal", "leaf", "grass", "paper", "water", "gravel", "glass",
             "tile", "ceramic", "plastic-bag", "dirt", "cloth", "wood", "carpet"]
NUM_MATERIALS = len(MATERIALS)  # 17
MATERIAL_ID = {name: i for i, name in enumerate(MATERIALS)}  # the annotation files' lowercase names -> ID
CLIPS_PER_VIDEO = 10
SPLITS = {"train": 0, "val": 1, "test": 2}
FORMAT_VERSION = 1
SAMPLE_RATE = 22050  # both sources; the rate the real 96 kHz audio is resampled to (GREATEST_HITS.md)
TOY_DEFAULTS = dict(videos=60, size=32, seed=0)  # sized for 5 minutes of tt_agg.py on 2 CPU cores


class DataError(Exception):
    """A problem with the user's data or flags, worth one clear line (no traceback)."""


# ----------------------------------------------------------------------------------------------------------
# Spectrograms and the image transform: the inputs every model sees
# ----------------------------------------------------------------------------------------------------------

N_MELS = 64  # mel bands: enough to resolve the modal peaks that tell materials apart, few enough to keep
#              every band non-empty at n_fft = 1024 and 22,050 Hz


def spectrogram(clips, sample_rate, size):
    """(..., N) int16 or float clips -> (..., 1, size, size) float32: a square, normalised log-mel image.

    - Mel spectrogram with a ~46 ms window (n_fft 1024 at 22,050 Hz, scaled with the rate), hop n_fft/4
      (~12 ms: an impact's attack and decay span several frames), 64 mel bands from 0 Hz to Nyquist,
      power spectrum -- the common choice for Greatest Hits (CondFoleyGen uses 1024/256 at 22,050 Hz).
    - log(power + 1e-10), then each clip standardised to zero mean and unit variance: removes the recording
      gain, which varies per video and says nothing about the material, and keeps the spectral shape.
    - Resized bilinearly to size x size (antialiased when shrinking): the paper feeds a *square* image to
      the same CNNs it uses for frames (3.1), at the frame's size.
    """
    lead = clips.shape[:-1]
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4,
                                               n_mels=N_MELS, power=2.0).to(x.device)
    out = []
    for chunk in x.split(512):  # bounded memory for ~10,000 clips
        s = torch.log(mel(chunk) + 1e-10)  # (B, 64, T)
        s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
        s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", align_corners=False,
                          antialias=s.shape[-1] > size or s.shape[-2] > size)  # (B, 1, size, size)
        out.append(s)
    return torch.cat(out).reshape(*lead, 1, size, size)


def image_transform(frames, size, train):
    """(B, 3, S, S) uint8 frames -> (B, 3, size, size) float on the same device (paper 3.3.2).

    Resize to the model's input size without keeping the aspect ratio; random horizontal flip with p = 0.5
    in training only, drawn per image from torch's generator (so `torch.manual_seed` repeats it); values
    mapped from [0, 255] to [-1, 1] (the towers start from scratch, so no ImageNet statistics are needed).
    """
    x = frames.float() / 127.5 - 1.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if train:
        flip = torch.rand(x.shape[0], device=x.device) < 0.5  # (B,)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


# ----------------------------------------------------------------------------------------------------------
# The dataset file: check, save atomically, load onto the device
# ----------------------------------------------------------------------------------------------------------

def check_dataset(d, name="dataset"):
    """Raise DataError unless `d` follows the dataset contract above."""
    if not isinstance(d, dict):
        raise DataError(f"{name} is not a dataset dict (made by `python data.py toy` or `data.py prepare`)")
    version = d.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(f"{name} has format version {version}, this code reads version {FORMAT_VERSION}: "
                        f"rebuild it with `python data.py toy` or `python data.py prepare ROOT`")
    need = ["frames", "image_labels", "clips", "clip_materials", "split", "video_ids", "sample_rate",
            "materials", "source"]
    missing = [k for k in need if k not in d]
    if missing:
        raise DataError(f"{name} lacks {', '.join(missing)}: rebuild it with `python data.py toy` or "
                        f"`python data.py prepare ROOT`")
    V = len(d["video_ids"])
    frames, labels, clips, mats, split = (d[k] for k in ["frames", "image_labels", "clips", "clip_materials",
                                                         "split"])
    problems = []
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[:2] != (V, 3) \
            or frames.shape[2] != frames.shape[3]:
        problems.append(f"frames {tuple(frames.shape)} {frames.dtype}, expected uint8 (V, 3, S, S)")
    if labels.dtype != torch.bool or labels.shape != (V, NUM_MATERIALS):
        problems.append(f"image_labels {tuple(labels.shape)} {labels.dtype}, expected bool (V, 17)")
    if clips.dtype != torch.int16 or clips.ndim != 3 or clips.shape[:2] != (V, CLIPS_PER_VIDEO):
        problems.append(f"clips {tuple(clips.shape)} {clips.dtype}, expected int16 (V, 10, N)")
    if mats.dtype != torch.int64 or mats.shape != (V, CLIPS_PER_VIDEO) or \
            (mats.numel() and (mats.min() < 0 or mats.max() >= NUM_MATERIALS)):
        problems.append("clip_materials must be int64 (V, 10) with IDs 0-16")
    if split.dtype != torch.int8 or split.shape != (V,) or not bool(((split >= 0) & (split <= 2)).all()):
        problems.append("split must be int8 (V,) with values 0, 1, 2")
    if list(d["materials"]) != MATERIALS:
        problems.append("materials are not the paper's Table 1 order")
    if problems:
        raise DataError(f"{name} is malformed: {'; '.join(problems)}")


def atomic_save(obj, path):
    """torch.save to a temporary file in the same folder, then rename: an error or an interrupt never leaves
    a half-written file, and an existing file stays intact until the new one is complete."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); datasets and checkpoints are shared files
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_dataset(path):
    """The dataset dict at `path`, checked; DataError with a clear message otherwise."""
    if not os.path.exists(path):
        raise DataError(f"no dataset file at {path}: make one with `python data.py toy --out {path}`")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not a dataset file (a .pt made by data.py)")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path} is not a readable dataset file ({type(e).__name__}): rebuild it with "
                        f"`python data.py toy` or `python data.py prepare ROOT`") from None
    check_dataset(d, path)
    return d


def toy_path(videos, size, seed):
    return os.path.join("data", f"toy-v{videos}-s{size}-seed{seed}.pt")


@dataclass
class Dataset:
    """The whole dataset on the training device. Index a split's videos with `videos('train')`."""
    frames: torch.Tensor          # (V, 3, S, S) uint8
    spectrograms: torch.Tensor    # (V, 10, 1, S, S) float32, from `spectrogram`
    image_labels: torch.Tensor    # (V, 17) bool
    clip_materials: torch.Tensor  # (V, 10) int64
    split: torch.Tensor           # (V,) int8
    video_ids: list
    source: str
    sample_rate: int
    path: str

    @property
    def size(self):
        return self.frames.shape[-1]

    def videos(self, split):
        """Indices (on the device) of the videos in 'train', 'val' or 'test'."""
        return torch.nonzero(self.split == SPLITS[split]).flatten()

    def describe(self):
        n = [len(self.videos(s)) for s in SPLITS]
        return (f"{self.source} data {self.path}: {len(self.video_ids)} videos ({n[0]} train / {n[1]} val / "
                f"{n[2]} test), {self.size}x{self.size} frames, {CLIPS_PER_VIDEO} clips of "
                f"{self.sample_rate} Hz per video")


def load(path, device):
    """Read a dataset file (None: the default toy dataset, built on first use) onto `device`, once.

    Frames stay uint8 (4x less memory; converted per batch by `image_transform`); clips are turned into
    spectrograms here, on the device, so the training loop only slices tensors.
    """
    if path is None:
        path = toy_path(**TOY_DEFAULTS)
        if not os.path.exists(path):
            print(f"building the toy dataset {path} (first use; reused afterwards)", flush=True)
            atomic_save(make_toy(**TOY_DEFAULTS), path)
    d = read_dataset(path)
    size = d["frames"].shape[-1]
    return Dataset(frames=d["frames"].to(device), spectrograms=spectrogram(d["clips"].to(device),
                                                                           d["sample_rate"], size),
                   image_labels=d["image_labels"].to(device), clip_materials=d["clip_materials"].to(device),
                   split=d["split"].to(device), video_ids=list(d["video_ids"]), source=d["source"],
                   sample_rate=int(d["sample_rate"]), path=path)


def pick_device(name, deterministic=False):
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is an error, not a silent fallback.

    On CUDA, cudnn autotuning picks the fastest convolution kernels for the shapes it meets, which may differ
    from run to run; `deterministic` turns it off and asks for deterministic kernels instead, so that a
    seeded GPU run repeats. A seeded CPU run repeats either way (at the same number of threads).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    if name == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for repeatability
            torch.use_deterministic_algorithms(True, warn_only=True)      # warn where no such kernel exists
    return torch.device(name)


# ----------------------------------------------------------------------------------------------------------
# The toy Greatest Hits
# ----------------------------------------------------------------------------------------------------------

def split_sizes(videos):
    """(train, val, test) as in the paper: test a quarter (244 of 977), validation 20% of the rest."""
    test = round(videos * 244 / 977)
    val = round((videos - test) * 0.2)
    return videos - val - test, val, test


# Scenes (paper 3.1: 64% outdoor). Weight = how often a material is picked for a frame of that scene.
SHARED = {"wood": 3.0, "metal": 3.0, "plastic": 1.2, "paper": 0.8, "cloth": 0.7, "plastic-bag": 0.5}
SCENES = {
    "outdoor": {**SHARED, "grass": 2.2, "leaf": 2.4, "dirt": 0.35, "rock": 1.8, "gravel": 1.4, "water": 1.2},
    "indoor": {**SHARED, "plastic": 2.0, "paper": 1.4, "cloth": 1.2, "tile": 0.8, "ceramic": 1.2,
               "carpet": 1.4, "drywall": 1.8, "glass": 1.3},
}
# Materials that are found together more often than their weights say (multiplies the weight by 3).
AFFINITY = [("grass", "leaf"), ("leaf", "dirt"), ("grass", "dirt"), ("rock", "gravel"), ("rock", "water"),
            ("tile", "ceramic"), ("carpet", "cloth"), ("drywall", "wood"), ("glass", "metal"),
            ("paper", "plastic-bag")]
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
    "plastic": ([(0.85, 0.15, 0.15), (0.15, 0.35, 0.85), (0.95, 0.85, 0.2), (0.2, 0.7, 0.3), (0.9, 0.9, 0.9)],
                "flat"),
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


def texture(name, size, rng):
    """(3, size, size) float image of one object of material `name` (values about 0-1)."""
    palette, family = LOOKS[name]
    base = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.85, 1.15, 3)
    y, x = np.mgrid[0:size, 0:size] / size  # (S, S) each, in [0, 1)
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)  # a rotated coordinate for oriented patterns
    v = -x * np.sin(angle) + y * np.cos(angle)
    fine = rng.random((size, size))
    if family == "flat":
        shade = 0.9 + 0.2 * smooth_noise(rng, size, 2) + 0.3 * np.exp(-((x - rng.random()) ** 2 + (
            y - rng.random()) ** 2) / 0.02)
    elif family == "speckle":
        shade = 0.95 + 0.05 * smooth_noise(rng, size, 3) + 0.08 * (fine - 0.5)
    elif family == "blotch":
        shade = 0.6 + 0.5 * smooth_noise(rng, size, 4) + 0.3 * smooth_noise(rng, size, 9) - 0.15
    elif family == "brushed":
        streaks = smooth_noise(rng, size, max(size // 2, 4))[0][None, :].repeat(size, 0)  # along one axis
        streaks = streaks if rng.random() < 0.5 else streaks.T
        shade = 0.8 + 0.25 * streaks + 0.35 * np.exp(-((u - rng.random()) ** 2) / 0.01)
    elif family == "scatter":  # leaves: coloured blobs over a darker ground
        shade = 0.55 + 0.1 * smooth_noise(rng, size, 4)
        img = base[:, None, None] * shade
        for _ in range(rng.integers(8, 16)):
            cx, cy, r = rng.random(), rng.random(), rng.uniform(0.06, 0.14)
            c = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.8, 1.2)
            blob = ((x - cx) / r) ** 2 + ((y - cy) / (0.6 * r)) ** 2 < 1
            img = np.where(blob[None], c[:, None, None], img)
        return img
    elif family == "blades":
        shade = 0.6 + 0.6 * smooth_noise(rng, size, max(size // 3, 6))[0][None, :] * \
            (0.7 + 0.3 * smooth_noise(rng, size, 3)) + 0.1 * (fine - 0.5)
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
        idx = (np.arange(size) * cells // size)
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
        shade = 0.85 + 0.1 * smooth_noise(rng, size, 3) + 0.4 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.03)
    elif family == "crinkle":
        ridges = np.abs(smooth_noise(rng, size, 6) - 0.5) + np.abs(smooth_noise(rng, size, 11) - 0.5)
        shade = 0.6 + 1.0 * ridges
    elif family == "weave":
        f = rng.uniform(6, 10)
        shade = 0.85 + 0.15 * np.sign(np.sin(2 * np.pi * u * f) * np.sin(2 * np.pi * v * f)) + 0.1 * (fine - .5)
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
    centres = rng.random((len(materials), 2))
    weights = np.array([1.6] + [1.0] * (len(materials) - 1))  # the first material fills the most
    dist = np.stack([np.hypot(x - cx, y - cy) / w for (cx, cy), w in zip(centres, weights)])
    region = dist.argmin(0)  # (S, S) which material each pixel shows
    img = np.zeros((3, size, size))
    for i, name in enumerate(materials):
        img = np.where(region[None] == i, texture(name, size, rng), img)
    # Per-video lighting: brightness, colour tint, a soft gradient across the frame.
    light = rng.uniform(0.6, 1.3) * (1 + rng.normal(0, 0.06, 3))[:, None, None]
    gx, gy = rng.normal(0, 0.25, 2)
    img = img * light * (1 + gx * (x - 0.5) + gy * (y - 0.5))[None]
    # The drumstick: a dark wooden bar entering from the frame's edge (paper: static scene but for it).
    a, ox = rng.uniform(-0.6, 0.6), rng.uniform(0.2, 0.8)
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
        obj["grains"], obj["length"], obj["grain_decay"] = rng.integers(*a), rng.uniform(*b), rng.uniform(*c)
    else:  # splash
        obj["bubble_freq"], obj["bubbles"], obj["decay"] = a, b, rng.uniform(*c)
    return obj


def hit_sound(obj, n, sample_rate, rng):
    """One impact of `obj`, starting at sample 0, n samples long, peak about 1."""
    t = np.arange(n) / sample_rate
    if obj["kind"] in ("modal", "noisy"):
        freqs = obj["freqs"] * (1 + rng.normal(0, 0.02, len(obj["freqs"])))  # per-hit variation
        amps = obj["amps"] * rng.uniform(0.6, 1.0, len(freqs))
        modes = (amps[:, None] * np.exp(-t / obj["decays"][:, None])
                 * np.sin(2 * np.pi * freqs[:, None] * t + rng.uniform(0, 2 * np.pi, (len(freqs), 1)))).sum(0)
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
            phase = 2 * np.pi * f0 * (tb + 2.0 * tb ** 2)  # f(t) = f0 (1 + 4 t)
            sound += rng.uniform(0.3, 0.8) * (t >= start) * np.exp(-tb / rng.uniform(0.02, 0.06)) * np.sin(phase)
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


def make_toy(videos=TOY_DEFAULTS["videos"], size=TOY_DEFAULTS["size"], seed=TOY_DEFAULTS["seed"],
             sample_rate=SAMPLE_RATE):
    """The toy Greatest Hits as a dataset dict (see the module docstring). Deterministic from `seed`."""
    if videos < 10:
        raise DataError(f"--videos {videos}: the toy dataset needs at least 10 videos (3 splits)")
    if size < 32:
        raise DataError(f"--size {size}: frames need at least 32 pixels (VGG halves them five times)")
    n = sample_rate  # one second
    frames = np.zeros((videos, 3, size, size), np.uint8)
    labels = np.zeros((videos, NUM_MATERIALS), bool)
    clips = np.zeros((videos, CLIPS_PER_VIDEO, n), np.int16)
    clip_materials = np.zeros((videos, CLIPS_PER_VIDEO), np.int64)
    outdoor = np.zeros(videos, bool)
    for v in range(videos):
        rng = np.random.default_rng([seed, v])  # each video from its own stream: video v is the same for any V
        outdoor[v] = rng.random() < 0.64
        pool = SCENES["outdoor" if outdoor[v] else "indoor"]
        names, weights = list(pool), np.array(list(pool.values()))
        chosen = []
        for _ in range(rng.choice(3, p=MATERIALS_PER_FRAME) + 1):
            w = weights * np.array([0 if m in chosen else 3 ** sum((m, c) in AFFINITY or (c, m) in AFFINITY
                                                                   for c in chosen) for m in names])
            chosen.append(names[rng.choice(len(names), p=w / w.sum())])
        frames[v] = make_frame(chosen, size, rng)
        labels[v, [MATERIAL_ID[m] for m in chosen]] = True
        # Ten hits: each material in view at least once, the rest mostly on the main (largest) material.
        hit_weights = np.array([2.0] + [1.0] * (len(chosen) - 1))
        hits = chosen + [chosen[i] for i in rng.choice(len(chosen), CLIPS_PER_VIDEO - len(chosen),
                                                       p=hit_weights / hit_weights.sum())]
        hits = [hits[i] for i in rng.permutation(CLIPS_PER_VIDEO)]
        objects = {m: make_object(m, rng) for m in chosen}
        gain, noise_level = rng.uniform(0.2, 0.9), rng.uniform(0.003, 0.03)
        for c, m in enumerate(hits):
            clip = make_clip(objects[m], list(objects.values()), n, sample_rate, rng, gain, noise_level)
            clips[v, c] = np.clip(clip * 32767, -32768, 32767).round().astype(np.int16)
            clip_materials[v, c] = MATERIAL_ID[m]
    train, val, test = split_sizes(videos)
    split = np.zeros(videos, np.int8)
    order = np.random.default_rng([seed, 977]).permutation(videos)
    split[order[train:train + val]], split[order[train + val:]] = 1, 2
    return {"frames": torch.from_numpy(frames), "image_labels": torch.from_numpy(labels),
            "clips": torch.from_numpy(clips), "clip_materials": torch.from_numpy(clip_materials),
            "split": torch.from_numpy(split), "video_ids": [f"toy-{seed}-{v:04d}" for v in range(videos)],
            "sample_rate": sample_rate, "materials": list(MATERIALS), "source": "toy",
            "format_version": FORMAT_VERSION, "seed": seed, "size": size, "outdoor": torch.from_numpy(outdoor)}


# ----------------------------------------------------------------------------------------------------------
# Preparing the real Greatest Hits
# ----------------------------------------------------------------------------------------------------------
# `python data.py prepare ROOT` turns the unpacked archive (layout: ../shared/GREATEST_HITS.md) into the
# dataset file above. Two passes: first the lists and every annotation file are read and checked (seconds,
# so that a typo stops the run before the long part), then each recording's sound and frame are decoded
# with PyAV (minutes), under a progress bar. The choices the paper leaves open are made here, each in one
# function: which hits become clips (`choose_hits`), which frame is the picture (`frame_time`), how
# train.txt is split into train and validation (`split_train_list`).

FRAME_SIZE = 224  # frames resized to 224x224 without keeping the aspect ratio (paper 3.3.2)
MEDIA = ["_denoised.wav", "_denoised.mp4", "_times.txt"]  # what prepare reads of each recording


@dataclass
class Event:
    """One line of `<id>_times.txt`: `time material action reaction` ('None' read as None; the reaction,
    e.g. 'static', is not used)."""
    time: float
    material: str
    action: str


def find_root(root):
    """The folder holding train.txt: ROOT itself or one or two levels below it (the archive unpacks to
    vis-data-256/vis-data-256/, so users may give either level, or the folder they unzipped into)."""
    if not os.path.isdir(root):
        raise DataError(f"{root} is not a folder: give the folder you unpacked vis-data-256.zip into "
                        f"(the one holding train.txt and test.txt, or one above it)")
    for depth in range(3):
        found = sorted(glob.glob(os.path.join(glob.escape(root), *["*"] * depth, "train.txt")))
        if len(found) > 1:
            raise DataError(f"several train.txt under {root} ({', '.join(found)}): give the folder to use")
        if found:
            folder = os.path.dirname(found[0])
            if not os.path.isfile(os.path.join(folder, "test.txt")):
                raise DataError(f"{folder} has train.txt but no test.txt: unpack the whole archive again")
            return folder
    raise DataError(f"no train.txt in {root} or the two folder levels below it: give the folder of the "
                    f"unpacked archive that holds train.txt and test.txt")


def read_id_list(path):
    """[(recording id, line number)] from train.txt or test.txt: one bare id per line, blank lines skipped."""
    ids = []
    with open(path, encoding="utf-8", errors="replace") as f:  # bytes that are not text fail the checks below
        for n, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) > 1:
                raise DataError(f"{path} line {n}: expected one recording id, found {line.strip()[:80]!r}: "
                                f"fix or delete this line")
            if fields:
                ids.append((fields[0], n))
    return ids


def read_times(path):
    """[Event] from `<id>_times.txt`, checked line by line (blank lines skipped)."""
    events = []
    with open(path, encoding="utf-8", errors="replace") as f:  # a binary file fails the checks below, by line
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                time_ = float(fields[0]) if len(fields) == 4 else math.nan
            except ValueError:
                time_ = math.nan
            if not math.isfinite(time_):
                raise DataError(f"{path} line {n}: expected four fields 'time material action reaction' "
                                f"with a number first, found {line.strip()[:80]!r}: fix or delete this line")
            material, action = (None if x == "None" else x for x in fields[1:3])
            if material is not None and material not in MATERIAL_ID:
                raise DataError(f"{path} line {n}: unknown material {material!r} (known: "
                                f"{', '.join(sorted(MATERIAL_ID))}, or None): fix this line")
            events.append(Event(time_, material, action))
    return events


def read_annotations(folder):
    """{id: (split name, [Event])} for every id of train.txt and test.txt, after checking that each id is
    listed once and has its three files. Reads only text: fast, so errors show before any decoding."""
    recordings, where = {}, {}
    for list_name in ["train", "test"]:
        list_path = os.path.join(folder, f"{list_name}.txt")
        for rid, n in read_id_list(list_path):
            if rid in where:
                raise DataError(f"{list_path} line {n}: {rid} is already listed ({where[rid]}): "
                                f"list each recording once, in train.txt or test.txt")
            where[rid] = f"{list_name}.txt line {n}"
            for suffix in MEDIA:
                if not os.path.isfile(os.path.join(folder, rid + suffix)):
                    raise DataError(f"{list_path} line {n}: recording {rid} has no {rid + suffix} in {folder}: "
                                    f"unpack the whole archive, or delete this line")
            recordings[rid] = (list_name, read_times(os.path.join(folder, rid + "_times.txt")))
    if not recordings:
        raise DataError(f"train.txt and test.txt in {folder} list no recordings")
    return recordings


def media_error(path, problem):
    return DataError(f"{path}: {problem}: download or unpack it again, or delete its id from the list")


def read_sound(path):
    """(T,) float32 mono sound of a wav at SAMPLE_RATE, in [-1, 1].

    PyAV decodes any sample format (int16, int32, float: the real files' depth is not confirmed); the
    channels are averaged (mono, as CondFoleyGen does); torchaudio resamples 96 kHz -> 22,050 Hz with a
    windowed-sinc filter that keeps time 0 at sample 0, so a hit at t seconds is at sample t * 22,050.
    """
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise media_error(path, "no sound track")
            stream = container.streams.audio[0]
            rate = stream.rate
            to_float = av.AudioResampler(format="fltp")  # planar float, same layout and rate
            chunks = [g.to_ndarray() for f in container.decode(stream) for g in to_float.resample(f)]
            chunks += [g.to_ndarray() for g in to_float.resample(None)]  # flush
    except av.FFmpegError as e:
        raise media_error(path, f"cannot be decoded ({e.strerror or e})") from None  # str(e) repeats the path
    if not chunks:
        raise media_error(path, "no sound samples")
    mono = torch.from_numpy(np.concatenate(chunks, axis=1)).mean(0)  # (C, T) -> (T,)
    return torchaudio.functional.resample(mono, rate, SAMPLE_RATE)


def read_frame(path, t):
    """(3, FRAME_SIZE, FRAME_SIZE) uint8: the frame of the mp4 on screen at t seconds (the last frame that
    starts at or before t; the last frame of the video if t is past its end)."""
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise media_error(path, "no video track")
            stream = container.streams.video[0]
            start = float((stream.start_time or 0) * stream.time_base)  # timestamps may not begin at 0
            t = t + start
            container.seek(int(t / stream.time_base), stream=stream)  # to the key frame at or before t
            chosen = None
            for frame in container.decode(stream):  # ... then decode forward to t
                if chosen is not None and frame.time is not None and frame.time > t:
                    break
                chosen = frame
            if chosen is None:
                raise media_error(path, "no video frames")
            rgb = chosen.to_ndarray(format="rgb24")  # (H, W, 3) uint8
    except av.FFmpegError as e:
        raise media_error(path, f"cannot be decoded ({e.strerror or e})") from None  # str(e) repeats the path
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    # Bilinear and antialiased, like image_transform: 456x256 -> 224x224 shrinks, so antialias matters.
    x = F.interpolate(x, size=(FRAME_SIZE, FRAME_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x[0].round().clamp(0, 255).to(torch.uint8)


def usable_hits(events, duration):
    """The events a clip can be cut for, in time order: action 'hit', a material, a time inside the sound.
    Scratches are left out (the paper's clips are interactions of one kind: hits)."""
    return sorted((e for e in events if e.action == "hit" and e.material is not None and 0 <= e.time <= duration),
                  key=lambda e: e.time)


def choose_hits(hits, rid, seed):
    """Ten of the usable hits, spread over the recording, deterministic from the seed and the id.

    Ten or more hits: the time-ordered hits are cut into ten runs of consecutive hits (sizes differing by at
    most one) and one hit is drawn from each run, so the clips cover the whole recording rather than its
    busiest part. Fewer than ten (the recording is 'padded'): every hit is used, each floor(10/h) or
    ceil(10/h) times, which ones get the extra use drawn from the seed. Returned in time order.
    Each recording draws from its own stream (seed, crc32 of its id): its clips do not depend on which other
    recordings are listed.
    """
    rng = np.random.default_rng([seed, zlib.crc32(rid.encode())])
    if len(hits) >= CLIPS_PER_VIDEO:
        picks = [int(rng.choice(run)) for run in np.array_split(np.arange(len(hits)), CLIPS_PER_VIDEO)]
    else:
        order = rng.permutation(len(hits))
        picks = sorted(int(order[i % len(hits)]) for i in range(CLIPS_PER_VIDEO))
    return [hits[i] for i in picks]


def frame_time(events, duration):
    """When to take the picture (paper 3.1: "the image in the video is steady (save for the movement of the
    drumstick), we selected one frame"): the middle of the longest gap between two consecutive annotated
    events (any action, with a material or not), the moment farthest in time from any contact, when the
    stick is least likely to be on, over or blurred across the surface. The stretches before the first
    and after the last event are not used: the camera may still be settling or already moving away.
    With fewer than two events, the middle of the recording."""
    times = sorted(e.time for e in events if 0 <= e.time <= duration)
    if len(times) < 2:
        return duration / 2
    i = int(np.argmax(np.diff(times)))  # the first of equally long gaps
    return (times[i] + times[i + 1]) / 2


def cut_clip(sound, t):
    """(SAMPLE_RATE,) int16: the second of `sound` centred on t (the hit at sample SAMPLE_RATE // 2), zero-padded
    where it runs past either end of the file -- not shifted, which would move the hit off the centre."""
    n = SAMPLE_RATE
    begin = round(t * SAMPLE_RATE) - n // 2
    clip = torch.zeros(n)
    lo, hi = max(begin, 0), min(begin + n, len(sound))
    if hi > lo:
        clip[lo - begin:hi - begin] = sound[lo:hi]
    return (clip * 32767).round().clamp(-32768, 32767).to(torch.int16)


def prepare_recording(folder, rid, events, seed):
    """One recording -> dict(frame, clips, clip_materials, hit_times, frame_time, padded), or None when it
    has no usable hit (left out)."""
    sound = read_sound(os.path.join(folder, rid + "_denoised.wav"))  # (T,) at SAMPLE_RATE
    duration = len(sound) / SAMPLE_RATE
    hits = usable_hits(events, duration)
    if not hits:
        return None
    chosen = choose_hits(hits, rid, seed)
    t = frame_time(events, duration)
    return {"frame": read_frame(os.path.join(folder, rid + "_denoised.mp4"), t),
            "clips": torch.stack([cut_clip(sound, h.time) for h in chosen]),  # (10, N)
            "clip_materials": torch.tensor([MATERIAL_ID[h.material] for h in chosen]),
            "hit_times": torch.tensor([h.time for h in chosen], dtype=torch.float64),
            "frame_time": t, "padded": len(hits) < CLIPS_PER_VIDEO}


def split_train_list(train_ids, seed):
    """{id: 0 or 1}: 20% of the (kept) train.txt recordings, drawn with the seed, become validation; the
    paper's 586/147 of 733. Ids are sorted first, so the order of lines in train.txt does not matter."""
    ids = sorted(train_ids)
    val = set(np.random.default_rng([seed, 977]).permutation(len(ids))[:round(0.2 * len(ids))].tolist())
    return {rid: SPLITS["val"] if i in val else SPLITS["train"] for i, rid in enumerate(ids)}


def progress(done, total, start):
    """A one-line progress bar on stderr, redrawn in place with '\\r'."""
    width = 30
    elapsed = time.time() - start
    left = elapsed / done * (total - done) if done else 0
    bar = "#" * (width * done // total) + "." * (width - width * done // total)
    print(f"\rpreparing [{bar}] {done}/{total} recordings, {elapsed:.0f} s, about {left:.0f} s left ",
          end="", file=sys.stderr, flush=True)


def prepare(root, seed=0):
    """The real Greatest Hits under `root` as a dataset dict, plus a report: {'padded': n, 'left_out': [ids]}.

    Videos are in sorted id order. Beyond the contract the dict keeps `hit_times` (V, 10) and `frame_times`
    (V,) in seconds, so that any clip or frame can be traced back to its recording.
    """
    folder = find_root(root)
    recordings = read_annotations(folder)
    ids = sorted(recordings)
    V = len(ids)
    frames = torch.zeros(V, 3, FRAME_SIZE, FRAME_SIZE, dtype=torch.uint8)
    clips = torch.zeros(V, CLIPS_PER_VIDEO, SAMPLE_RATE, dtype=torch.int16)  # ~430 MB for all 977
    clip_materials = torch.zeros(V, CLIPS_PER_VIDEO, dtype=torch.int64)
    hit_times = torch.zeros(V, CLIPS_PER_VIDEO, dtype=torch.float64)
    frame_times = torch.zeros(V, dtype=torch.float64)
    labels = torch.zeros(V, NUM_MATERIALS, dtype=torch.bool)
    kept, left_out, padded = [], [], 0
    start = time.time()
    try:
        for i, rid in enumerate(ids):
            progress(i, V, start)
            _, events = recordings[rid]
            r = prepare_recording(folder, rid, events, seed)
            if r is None:
                left_out.append(rid)
                continue
            k = len(kept)
            frames[k], clips[k], clip_materials[k], hit_times[k] = (r["frame"], r["clips"], r["clip_materials"],
                                                                   r["hit_times"])
            frame_times[k], padded = r["frame_time"], padded + r["padded"]
            # Image label (3.3.2, multi-label): every material annotated anywhere in the recording, whatever
            # the action -- what the annotations say is in view; a material seen but never touched is missed.
            labels[k, [MATERIAL_ID[e.material] for e in events if e.material is not None]] = True
            kept.append(rid)
        progress(V, V, start)
    finally:
        print(file=sys.stderr)  # end the bar's line, so that what follows (an error too) starts a new one
    val = split_train_list([rid for rid in kept if recordings[rid][0] == "train"], seed)
    split = torch.tensor([val.get(rid, SPLITS["test"]) for rid in kept], dtype=torch.int8)
    for name, s in SPLITS.items():
        if not (split == s).any():
            raise DataError(f"no recording left for the {name} split ({len(kept)} usable of {V}): "
                            f"train.txt needs at least 3 and test.txt 1 recording with usable hits (a hit "
                            f"with a material, inside the sound)")
    if len(kept) < V:  # drop the left-out rows (a copy: torch.save would write a slice's whole storage)
        frames, labels, clips, clip_materials, hit_times, frame_times = (
            x[:len(kept)].clone() for x in (frames, labels, clips, clip_materials, hit_times, frame_times))
    d = {"frames": frames, "image_labels": labels, "clips": clips, "clip_materials": clip_materials,
         "split": split, "video_ids": kept, "sample_rate": SAMPLE_RATE, "materials": list(MATERIALS),
         "source": "greatest-hits", "format_version": FORMAT_VERSION, "seed": seed, "size": FRAME_SIZE,
         "hit_times": hit_times, "frame_times": frame_times}
    check_dataset(d, "the prepared dataset")
    return d, {"padded": padded, "left_out": left_out}


def summary(d):
    """Lines describing a dataset dict: videos per split, materials per frame, hits per material."""
    split = d["split"]
    lines = ["videos: " + ", ".join(f"{s} {int((split == i).sum())}" for s, i in SPLITS.items())
             + f" ({len(d['video_ids'])} in all)",
             f"frames: {tuple(d['frames'].shape[1:])} uint8; clips: {tuple(d['clips'].shape[1:])} int16 at "
             f"{d['sample_rate']} Hz; {d['image_labels'].sum(1).float().mean():.2f} materials per frame"]
    if "outdoor" in d:
        lines.append(f"scenes: {d['outdoor'].float().mean():.0%} outdoor")
    counts = torch.bincount(d["clip_materials"].flatten(), minlength=NUM_MATERIALS)
    total = counts.sum().item()
    lines.append("hits per material (share of all hits):")
    lines += [f"  {i:2d} {name:<12} {c:6d}  {c / total:6.1%}" for i, (name, c) in enumerate(zip(MATERIALS,
                                                                                               counts.tolist()))]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the dataset file every script reads.")
    sub = parser.add_subparsers(dest="command", required=True)
    toy = sub.add_parser("toy", help="synthesise the toy Greatest Hits (see this file's docstring)",
                         description="Synthesise the toy Greatest Hits: frames, ten hit sounds per video, "
                                     "labels and splits, deterministic from --seed.")
    toy.add_argument("--videos", type=int, default=TOY_DEFAULTS["videos"],
                     help="number of videos (default %(default)s; 977 for the paper's 586/147/244 split)")
    toy.add_argument("--size", type=int, default=TOY_DEFAULTS["size"],
                     help="frame and spectrogram side in pixels (default %(default)s; the paper uses 224)")
    toy.add_argument("--seed", type=int, default=TOY_DEFAULTS["seed"], help="generator seed (default %(default)s)")
    toy.add_argument("--out", default=None,
                     help="output file (default data/toy-v<videos>-s<size>-seed<seed>.pt, which the scripts "
                          "use when given no --data and the default sizes)")
    prep = sub.add_parser("prepare", help="turn the unpacked real Greatest Hits into a dataset file",
                          description="Turn the unpacked Greatest Hits (vis-data-256.zip or vis-data.zip) into "
                                      "the dataset file every script reads with --data: one 224x224 frame and "
                                      "ten one-second hit clips per recording; test.txt is the test set, "
                                      "train.txt is split 80/20 into train and validation with --seed.")
    prep.add_argument("root", metavar="ROOT", help="the folder holding train.txt and test.txt, or one or two "
                                                   "levels above it (the archive nests vis-data-256/vis-data-256)")
    prep.add_argument("--out", default=os.path.join("data", "greatest_hits.pt"),
                      help="output file (default %(default)s); written only when complete")
    prep.add_argument("--seed", type=int, default=0,
                      help="seed of the validation split and of the choice of hits (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.seed < 0:  # numpy's generators take only non-negative seeds
            raise DataError(f"--seed {args.seed}: give a seed of 0 or more")
        if args.command == "toy":
            out = args.out or toy_path(args.videos, args.size, args.seed)
            start = time.time()
            d = make_toy(args.videos, args.size, args.seed)
            atomic_save(d, out)
            print(f"wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB) in {time.time() - start:.1f} s")
            print("\n".join(summary(d)))
        elif args.command == "prepare":
            start = time.time()
            try:
                d, report = prepare(args.root, args.seed)
                atomic_save(d, args.out)
            except KeyboardInterrupt:  # nothing was half-written (atomic_save): say so, without a traceback
                parser.exit(130, f"interrupted: nothing written (an existing {args.out} is unchanged)\n")
            took, left = time.time() - start, report["left_out"]
            print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.1f} MiB) in {took:.1f} s "
                  f"({took / (len(d['video_ids']) + len(left)):.2f} s per recording)")
            print("\n".join(summary(d)))
            print(f"recordings padded (fewer than {CLIPS_PER_VIDEO} usable hits, so hits reused): {report['padded']}")
            print(f"recordings left out (no usable hit): {len(left)}" + (f" ({', '.join(left)})" if left else ""))
    except DataError as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
