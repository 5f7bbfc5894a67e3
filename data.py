"""What every script reads: the dataset file, its check, spectrograms, the image transform, loading.

Every script reads the same kind of file, written by `torch.save` and read back with
`torch.load(path, weights_only=True)`: a plain dict of tensors (`check_dataset` holds the exact contract).

    frames          uint8 (V, 3, S, S)   one RGB frame per video
    image_labels    bool  (V, 17)        every material present in the video (multi-label, paper 3.3.2)
    clips           int16 (V, 10, N)     ten one-second mono clips per video, each centred on a hit (3.1)
    clip_materials  int64 (V, 10)        the material ID of each clip (Table 1 order)
    split           int8  (V,)           0 train, 1 validation, 2 test, by video
    video_ids, sample_rate, materials, source ('toy' or 'greatest-hits'), format_version, seed, size

Two programs in dataset_sources/ write it: `python data.py toy` synthesises a stand-in of the same shape
(dataset_sources/toy.py) and `python data.py prepare ROOT` turns the real Greatest Hits into it
(dataset_sources/greatest_hits.py, the only code that needs PyAV). Training needs neither: scripts call
`load()`, which puts the whole dataset on the training device once -- frames as uint8, clips already turned
into spectrograms -- so that a batch is an index slice.
"""
import argparse
import math
import os
import sys
import tempfile
from dataclasses import dataclass

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
SAMPLE_RATE = 22050  # both sources: the toy is made at this rate, the real 96 kHz recordings resampled to it
TOY_DEFAULTS = dict(videos=70, size=32, seed=0)  # the default toy, small enough for a laptop CPU (README)


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
# The dataset file: check, write atomically, read, load onto the device
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


def atomic_write(path, write):
    """Call `write(f)` on a temporary file beside `path` (opened for bytes), then rename it to `path`: an error
    or an interrupt never leaves a half-written file, and an existing one stays intact until the new one is
    complete. Every file the project writes goes through here: datasets, checkpoints, metrics.json, figures."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); what the project writes is for every reader
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_save(obj, path):
    """torch.save `obj` to `path` through atomic_write."""
    atomic_write(path, lambda f: torch.save(obj, f))


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
            from dataset_sources import toy  # the generator, needed only this once
            print(f"building the toy dataset {path} (first use; reused afterwards)", flush=True)
            atomic_save(toy.make_toy(**TOY_DEFAULTS), path)
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


def main(argv=None):
    """`python data.py toy ...` and `python data.py prepare ROOT ...`, the two ways to make a dataset file,
    handed over to the programs that do it, in dataset_sources/."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="data.py", usage="%(prog)s [-h] {toy,prepare} ...",
                                     description="Make the dataset file every script reads.")
    parser.add_argument("command", choices=["toy", "prepare"],
                        help="toy: synthesise the toy Greatest Hits; prepare: turn the unpacked real Greatest Hits "
                             "into a dataset file (`python data.py toy --help`, `... prepare --help`: their flags)")
    if parser.parse_args(argv[:1]).command == "toy":
        from dataset_sources import toy
        toy.main(argv[1:])
    else:
        from dataset_sources import greatest_hits
        greatest_hits.main(argv[1:])


if __name__ == "__main__":
    main()
