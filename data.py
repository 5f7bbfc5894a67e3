"""What every script shares: the dataset file, its check, spectrograms, the image transform, loading; writing
files so that nothing is half-written or replaced that is not ours; the checks of flags and of divergence.

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
import contextlib
import hashlib
import math
import os
import shutil
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

TENSORS = {"frames": torch.uint8, "image_labels": torch.bool, "clips": torch.int16, "clip_materials": torch.int64,
           "split": torch.int8}  # the contract's tensors and their types
REBUILD = "rebuild it with `python data.py toy` or `python data.py prepare ROOT`"


def check_dataset(d, name="dataset"):
    """Raise DataError unless `d` follows the dataset contract above, in full, so that an edited or a stranger's
    file stops here in one line rather than deep in the training code."""
    if not isinstance(d, dict):
        raise DataError(f"{name} is not a dataset dict: {REBUILD}")
    if d.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{name} has format version {d.get('format_version')}, this code reads version "
                        f"{FORMAT_VERSION}: {REBUILD}")
    missing = [k for k in [*TENSORS, "video_ids", "sample_rate", "materials", "source"] if k not in d]
    if missing:
        raise DataError(f"{name} lacks {', '.join(missing)}: {REBUILD}")
    ids = d["video_ids"]
    V = len(ids) if isinstance(ids, (list, tuple)) else -1
    f, labels, clips, mats, split = (d[k] if isinstance(d[k], torch.Tensor) and d[k].dtype == t
                                     else torch.zeros((0,) * 5, dtype=t) for k, t in TENSORS.items())
    n = [int((split == s).sum()) for s in SPLITS.values()] if split.shape == (V,) else [0, 0, 0]
    problems = [text for wrong, text in [
        (V < 1 or not all(isinstance(i, str) for i in ids) or len(set(ids)) < V,
         "video_ids must be a list of distinct strings, at least one"),
        (f.ndim != 4 or f.shape[:2] != (V, 3) or f.shape[2] != f.shape[3] or f.shape[2] < 32,
         "frames must be uint8 (V, 3, S, S), S 32 or more (VGG halves a frame five times)"),
        (labels.shape != (V, NUM_MATERIALS), "image_labels must be bool (V, 17)"),
        (clips.shape != (V, CLIPS_PER_VIDEO, SAMPLE_RATE), f"clips must be int16 (V, 10, {SAMPLE_RATE}), one second"),
        (mats.shape != (V, CLIPS_PER_VIDEO) or bool(mats.numel() and (mats.min() < 0 or mats.max() >= NUM_MATERIALS)),
         "clip_materials must be int64 (V, 10) with IDs 0-16"),
        (n[0] < 2 or 0 in n or sum(n) != V, f"split must be int8 (V,) of 0, 1, 2, with 2 or more train videos and "
                                            f"1 or more val and test videos (found {n[0]} / {n[1]} / {n[2]})"),
        (type(d["sample_rate"]) is not int or d["sample_rate"] != SAMPLE_RATE, f"sample_rate must be {SAMPLE_RATE}"),
        (not isinstance(d["materials"], (list, tuple)) or list(d["materials"]) != MATERIALS,
         "materials must be the paper's Table 1 in order"),
        (not isinstance(d["source"], str), "source must be a string")] if wrong]
    if problems:  # the first only: one line to read
        raise DataError(f"{name} is malformed: {problems[0]}: {REBUILD}")


def fingerprint(d):
    """16 hex digits of sha256 over a dataset dict's tensors and video ids. A run records it, so that a dataset
    rebuilt at the same path (with another seed, say) is not taken for the one the run was trained on."""
    h = hashlib.sha256()
    for k in TENSORS:
        t = d[k].detach().cpu().contiguous()
        h.update(f"{k} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy())  # the bytes, not copied
    h.update(repr(list(d["video_ids"])).encode())
    return h.hexdigest()[:16]


KINDS = (b"PK\x03\x04", b"{", b"\x89PNG", b"RIFF")  # how the files we write begin: torch.save, JSON, PNG, WAV


def kind(path):
    """Which of KINDS the regular file at `path` begins with; None for anything else (a link too)."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        head = f.read(4)
    return next((k for k in KINDS if head.startswith(k)), None)


def check_out(path, folder=False):
    """Raise DataError unless `path` may be written: nothing there, or a file of KINDS (with `folder`: a folder
    of such files), in a place we can write. Scripts call it before their work, so that no long run is lost at
    its end for want of a place to save it; every write calls it too, so nothing else is ever replaced."""
    if not path:
        raise DataError("--out is empty: give a file or folder name")
    if os.path.lexists(path):
        is_folder = os.path.isdir(path) and not os.path.islink(path)
        found = [os.path.join(r, name) for r, _, names in os.walk(path) for name in names] if is_folder else [path]
        theirs = [p for p in found if kind(p) is None] if folder == is_folder else [path]
        if theirs:
            raise DataError(f"{theirs[0]} is in the way and was not written by this program (left as it is): "
                            f"move it away or choose another --out")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise DataError(f"{parent} is not a folder: choose another --out")
    try:
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".tmp-"))
    except OSError as e:
        raise DataError(f"cannot write in {parent} ({e.strerror}): choose another --out") from None


def atomic_write(path, write):
    """Call `write(f)` on a temporary file beside `path` (opened for bytes), then rename it to `path`: an error
    or an interrupt never leaves a half-written file, and an existing one stays intact until the new one is
    complete. Only a regular file of the same kind (KINDS) is replaced: never a source file, a link, a device.
    Every file the project writes goes through here."""
    check_out(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if os.path.lexists(path) and kind(path) != kind(tmp):  # e.g. a dataset over a metrics.json
            raise DataError(f"{path} is a file of another kind than the one written: left as it is; move it "
                            f"away or choose another --out")
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); what the project writes is for every reader
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_save(obj, path):
    """torch.save `obj` to `path` through atomic_write."""
    atomic_write(path, lambda f: torch.save(obj, f))


@contextlib.contextmanager
def atomic_folder(path):
    """`with atomic_folder(path) as folder:` write a run's files into `folder`, new, beside `path`; when the
    block ends without error, it replaces `path` (nothing, or a folder of ours: check_out), so that the files
    appear together or not at all. After an error or Ctrl-C, `path` is as it was."""
    check_out(path, folder=True)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    old = folder + "-old"
    try:
        yield folder
        os.chmod(folder, 0o755)  # mkdtemp makes it private (0700)
        if os.path.lexists(path):
            os.rename(path, old)
        os.rename(folder, path)
    except BaseException:
        if os.path.lexists(old) and not os.path.lexists(path):
            os.rename(old, path)  # stopped between the two renames: the earlier folder goes back
        shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_dataset(path):
    """The dataset dict at `path`, checked; DataError with a clear message otherwise."""
    if not path:
        raise DataError("--data is empty: give a dataset file made by data.py, or leave --data out for the toy")
    if not os.path.exists(path):
        raise DataError(f"no dataset file at {path}: make one with `python data.py toy --out {path}`")
    if not os.path.isfile(path):  # a folder, or a device or pipe that reading could hang on
        raise DataError(f"{path} is {'a folder' if os.path.isdir(path) else 'not a regular file'}, not a dataset "
                        f"file (a .pt made by data.py)")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path} is not a readable dataset file ({type(e).__name__}): {REBUILD}") from None
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
    fingerprint: str              # `fingerprint` of the file's contents, recorded in every run

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
                   sample_rate=d["sample_rate"], path=path, fingerprint=fingerprint(d))


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
# What the four training scripts share beyond the data: flag ranges, batches, the check for divergence
# ----------------------------------------------------------------------------------------------------------

FLAGS = {"epochs": (lambda v: v >= 1, "1 or more"),
         "batch_size": (lambda v: v >= 2, "2 or more (batch normalisation cannot train on one example)"),
         "lr": (lambda v: 0 < v <= torch.finfo().max, "a positive number, at most float32's largest (3.4e38)"),
         "momentum": (lambda v: 0 <= v < 1, "from 0 to below 1"),
         "seed": (lambda v: 0 <= v < 2 ** 63, "from 0 to 2**63 - 1")}  # flag: (in range?, the range in words)


def check_flags(args):
    """Raise DataError naming the first flag of `args` (from argparse) outside its range in FLAGS."""
    for name, (ok, allowed) in FLAGS.items():
        if hasattr(args, name) and not ok(getattr(args, name)):
            raise DataError(f"--{name.replace('_', '-')} must be {allowed}, got {getattr(args, name)}")


def batches(order, batch_size):
    """`order` (N,) cut into batches of `batch_size`; a lone last example joins the batch before it, since batch
    normalisation cannot train on one (ResNet's last stage is 1x1 at 32 pixels)."""
    parts = list(order.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2:] = [order[-batch_size - 1:]]
    return parts


def check_finite(values, epoch=None):
    """Raise FloatingPointError if an epoch's training losses (steps,), or a model's outputs (no `epoch`), hold a
    NaN or an infinity: a run that diverged stops before anything is saved. The outputs are checked because no
    loss sees the result of an epoch's last step."""
    bad = torch.nonzero(~torch.isfinite(values)).tolist()
    if bad:
        raise FloatingPointError(f"the training loss became {values[bad[0][0]].item()} at epoch {epoch}, step "
                                 f"{bad[0][0] + 1}: lower --lr, or check the data" if epoch else
                                 "the model's outputs are NaN or infinite (its weights overflowed): lower --lr")


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
