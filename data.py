"""What every script shares: the dataset file and its check, spectrograms, the image transform, loading;
writing files so that nothing is half-written or replaced that is not ours; the run folder's name; the checks
of flags and of divergence.

The dataset file is a dict of TENSORS, video_ids, sample_rate, materials, source ('toy' or 'greatest-hits'),
format_version, seed and size, made by `python data.py toy` or `python data.py prepare ROOT`. Files are read
with weights_only=True: a file from a stranger is data, never code.
"""

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F
import torchaudio

MATERIALS = [
    "plastic",
    "drywall",
    "rock",
    "metal",
    "leaf",
    "grass",
    "paper",
    "water",
    "gravel",
    "glass",
    "tile",
    "ceramic",
    "plastic-bag",
    "dirt",
    "cloth",
    "wood",
    "carpet",
]  # Table 1's IDs, used everywhere
NUM_MATERIALS = len(MATERIALS)  # 17
MATERIAL_ID = {name: i for i, name in enumerate(MATERIALS)}  # the annotation files' lowercase names -> ID
CLIPS_PER_VIDEO = 10  # paper 3.1: ten hits per video
FORMAT_VERSION = 1  # of the dataset file: a file of another version is refused, not misread
SPLITS = {"train": 0, "val": 1, "test": 2}
SAMPLE_RATE = 22050  # both sources: the toy is made at this rate, the real 96 kHz recordings resampled to it
# The default toy, (train, val, test) videos: evaluation sets large enough for a run's number to mean
# something, a training set a laptop trains in minutes (dataset_sources/toy.py says why; `--videos 977`: the
# paper's shares).
TOY_DEFAULTS = dict(splits=(72, 60, 1000), size=32, seed=0)
TENSORS = {  # the dataset file's tensors, their types and shapes (V videos, S pixels, N samples)
    "frames": torch.uint8,  # (V, 3, S, S)  one RGB frame per video
    "image_labels": torch.bool,  # (V, 17)       every material in the video (multi-label, paper 3.3.2)
    "clips": torch.int16,  # (V, 10, N)    ten one-second mono clips per video, each centred on a hit (3.1)
    "clip_materials": torch.int64,  # (V, 10)       the material ID of each clip (Table 1 order)
    "split": torch.int8,  # (V,)          0 train, 1 validation, 2 test, by video
}
REBUILD = "rebuild it with `python data.py toy` or `python data.py prepare ROOT`"


class DataError(Exception):
    """A problem with the user's data or flags, worth one clear line (no traceback)."""


# --- Spectrograms and the image transform: the inputs every model sees -------------------------------------

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
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=N_MELS, power=2.0
    ).to(x.device)
    out = []
    for chunk in x.split(512):  # bounded memory for ~10,000 clips
        s = torch.log(mel(chunk) + 1e-10)  # (B, 64, T)
        s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
        s = F.interpolate(
            s[:, None],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=s.shape[-1] > size or s.shape[-2] > size,
        )  # (B, 1, size, size)
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


# --- The dataset file: check, fingerprint, read, load onto the device -------------------------------------


def typed(d, key):
    """d[key] when it is a tensor of its type in TENSORS, else an empty tensor of that type, whose shape check
    then fails: so check_dataset reads every tensor the same way."""
    value = d[key]
    if isinstance(value, torch.Tensor) and value.dtype == TENSORS[key]:
        return value
    return torch.zeros((0,) * 5, dtype=TENSORS[key])


def check_dataset(d, name="dataset"):
    """Raise DataError unless `d` follows the contract above in full: a bad file stops here, in one line
    naming the first problem found."""

    def refuse(problem):
        raise DataError(f"{name} {problem}: {REBUILD}")

    if not isinstance(d, dict):
        refuse("is not a dataset dict")
    if d.get("format_version") != FORMAT_VERSION:
        refuse(f"has format version {d.get('format_version')}, this code reads version {FORMAT_VERSION}")
    missing = [k for k in [*TENSORS, "video_ids", "sample_rate", "materials", "source"] if k not in d]
    if missing:
        refuse(f"lacks {', '.join(missing)}")
    ids = d["video_ids"]
    strings = isinstance(ids, (list, tuple)) and all(isinstance(i, str) for i in ids)
    if not strings or not ids or len(set(ids)) < len(ids):
        refuse("is malformed: video_ids must be a list of distinct strings, at least one")
    V = len(ids)
    frames = typed(d, "frames")
    square = frames.ndim == 4 and frames.shape[:2] == (V, 3) and frames.shape[2] == frames.shape[3]
    if not square or frames.shape[2] < 32:
        refuse(
            "is malformed: frames must be uint8 (V, 3, S, S), S 32 or more (VGG halves a frame five times)"
        )
    if typed(d, "image_labels").shape != (V, NUM_MATERIALS):
        refuse("is malformed: image_labels must be bool (V, 17)")
    if typed(d, "clips").shape != (V, CLIPS_PER_VIDEO, SAMPLE_RATE):
        refuse(f"is malformed: clips must be int16 (V, 10, {SAMPLE_RATE}), one second")
    materials = typed(d, "clip_materials")
    known = materials.numel() == 0 or bool(materials.min() >= 0 and materials.max() < NUM_MATERIALS)
    if materials.shape != (V, CLIPS_PER_VIDEO) or not known:
        refuse("is malformed: clip_materials must be int64 (V, 10) with IDs 0-16")
    split = typed(d, "split")
    n = [0, 0, 0]  # videos in train, val, test
    if split.shape == (V,):
        n = [int((split == s).sum()) for s in SPLITS.values()]
    if n[0] < 2 or 0 in n or sum(n) != V:
        refuse(
            f"is malformed: split must be int8 (V,) of 0, 1, 2, with 2 or more train videos and "
            f"1 or more val and test videos (found {n[0]} / {n[1]} / {n[2]})"
        )
    if type(d["sample_rate"]) is not int or d["sample_rate"] != SAMPLE_RATE:
        refuse(f"is malformed: sample_rate must be {SAMPLE_RATE}")
    if not isinstance(d["materials"], (list, tuple)) or list(d["materials"]) != MATERIALS:
        refuse("is malformed: materials must be the paper's Table 1 in order")
    if not isinstance(d["source"], str):
        refuse("is malformed: source must be a string")


def fingerprint(d):
    """16 hex digits of sha256 over a dataset dict's tensors and ids: runs record it, so that a file rebuilt
    at the same path is told apart from the one a run was trained on."""
    h = hashlib.sha256()
    for k in TENSORS:
        t = d[k].detach().cpu().contiguous()
        h.update(f"{k} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy())  # the bytes, not copied
    h.update(repr(list(d["video_ids"])).encode())
    return h.hexdigest()[:16]


def read_dataset(path):
    """The dataset dict at `path`, checked; DataError with a clear message otherwise."""
    if not path:
        raise DataError(
            "--data is empty: give a dataset file made by data.py, or leave --data out for the toy"
        )
    if not os.path.exists(path):
        raise DataError(f"no dataset file at {path}: make one with `python data.py toy --out {path}`")
    # A folder, or a device or pipe that reading could hang on, is refused before torch.load opens it.
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not a dataset file (a .pt made by data.py)")
    if not os.path.isfile(path):
        raise DataError(f"{path} is not a regular file, not a dataset file (a .pt made by data.py)")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path} is not a readable dataset file ({type(e).__name__}): {REBUILD}") from None
    check_dataset(d, path)
    return d


def toy_path(splits, size, seed, videos=None):
    """Where `python data.py toy` writes a toy by default, and where the scripts look for the default toy
    (TOY_DEFAULTS) when given no --data: named by its (train, val, test) `splits`, or by its number of
    `videos` when made with --videos (the paper's shares, each video's split drawn at random)."""
    if videos is not None:
        name = f"v{videos}"
    else:
        name = "-".join(map(str, splits))
    return os.path.join("data", f"toy-{name}-s{size}-seed{seed}.pt")


class Dataset:
    """The whole dataset on the device, loaded once, so that a batch is an index slice.

    It holds the TENSORS but the clips, which are turned into spectrograms once, here: `spectrograms`
    (V, 10, 1, S, S) float32. Also video_ids, source, sample_rate, size (S), path, and `fingerprint`, which
    every run records.
    """

    def __init__(self, d, path, device):
        self.frames = d["frames"].to(device)
        self.image_labels = d["image_labels"].to(device)
        self.clip_materials = d["clip_materials"].to(device)
        self.split = d["split"].to(device)
        self.size = d["frames"].shape[-1]
        self.sample_rate = d["sample_rate"]
        self.fingerprint = fingerprint(d)
        self.spectrograms = spectrogram(d["clips"].to(device), self.sample_rate, self.size)
        self.video_ids = list(d["video_ids"])
        self.source = d["source"]
        self.path = path

    def videos(self, split):
        """The indices (on the device) of the videos in `split`: 'train', 'val' or 'test'."""
        return torch.nonzero(self.split == SPLITS[split]).flatten()

    def describe(self):
        """One line on the dataset, as every script prints it and records it with the run."""
        n = [len(self.videos(s)) for s in SPLITS]
        return (
            f"{self.source} data {self.path}: {len(self.video_ids)} videos ({n[0]} train / {n[1]} val / "
            f"{n[2]} test), {self.size}x{self.size} frames, {CLIPS_PER_VIDEO} clips of {self.sample_rate} Hz "
            f"per video"
        )


def load(path, device):
    """The dataset file at `path` (None: the default toy, built on first use) on `device`, as a `Dataset`."""
    if path is None:
        path = default_toy()
    return Dataset(read_dataset(path), path, device)


def default_toy():
    """The path of the default toy (TOY_DEFAULTS), which every script uses when given no --data: built on
    first use, so that a first run needs no extra command, and reused afterwards."""
    path = toy_path(**TOY_DEFAULTS)
    if not os.path.exists(path):
        print(f"building the toy dataset {path} (first use; reused afterwards)", flush=True)
        toy = dataset_source("toy")
        atomic_save(toy.make_toy(**TOY_DEFAULTS), path)
    return path


def dataset_source(name):
    """The module of dataset_sources/ that makes a dataset file: 'toy' (the generator) or 'greatest_hits' (the
    real archive's preparation, the one module that needs PyAV)."""
    # dataset_sources/ sits above this module and imports it: imported here, when a dataset is made (the
    # default toy on first use, `python data.py toy` or `prepare`), never when data.py is imported.
    if name == "toy":
        from dataset_sources import toy as source
    else:
        from dataset_sources import greatest_hits as source
    return source


def pick_device(name, deterministic=False):
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is an error. `deterministic`: no cudnn
    autotuning and deterministic kernels, so that a seeded GPU run repeats (a CPU run does anyway, at equal
    threads)."""
    if name == "auto":
        name = "cpu"
        if torch.cuda.is_available():
            name = "cuda"
    if name == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    if name == "cuda":
        torch.backends.cudnn.benchmark = not deterministic  # autotuning picks kernels by speed, run to run
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            os.environ.setdefault(
                "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
            )  # cuBLAS's condition for repeatability
            torch.use_deterministic_algorithms(True, warn_only=True)  # warn where no such kernel exists
    return torch.device(name)


# --- Writing: nothing half-written, nothing replaced or deleted that is not ours ---------------------------
#
# The rule, for every program of the project: a file or folder is ours when it carries proof that the project
# wrote it, and only what is ours is ever replaced or deleted.
# - A folder the project writes (a run folder, a student copy, the study's figures) holds MANIFEST, naming
#   every file written into it; the folder is ours when it is a real folder (not a link) holding nothing else.
# - A single file is ours when its folder's manifest names it, or by its own content: a dataset file (its
#   format_version), a JSON object whose "written_by" begins with SIGNATURE, or a text file whose first line
#   says "written by matsound".
# Anything else in the way is left as it is, with one line saying so. Links are never followed for writing.

SIGNATURE = "matsound"
MANIFEST = ".matsound-manifest.json"  # in every folder the project writes: the files it wrote there
PROJECT = os.path.dirname(os.path.abspath(__file__))
OUTPUT_FOLDERS = ("runs", "data", "teaching-runs", "runs-gpu")  # the project's own ignored output folders


def read_manifest(folder):
    """The relative paths (with '/') a folder's manifest names; None without a readable manifest of ours."""
    path = os.path.join(folder, MANIFEST)
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("written_by") != SIGNATURE:
        return None
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return None
    return set(files)


def files_in(folder):
    """Every entry below `folder` that is not a folder (links included), as relative paths with '/'."""
    found = []
    for root, dirs, names in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]  # os.walk lists them as folders
        for name in names + links:
            found.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return found


def not_ours_in_folder(folder):
    """None when `folder` is ours (a real folder whose manifest names all it holds), else what is amiss."""
    if os.path.islink(folder):
        return f"{folder} is a link"
    if not os.path.isdir(folder):
        return f"{folder} is a file, not a folder"
    named = read_manifest(folder)
    if named is None:
        return f"{folder} has no {MANIFEST} (the mark of a folder this project wrote)"
    for name in files_in(folder):
        path = os.path.join(folder, name)
        if name != MANIFEST and (name not in named or os.path.islink(path)):
            return f"{path} was not written by this project"
    return None


def marked(path):
    """Whether the regular file at `path` carries the project's mark in its own content."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):  # torch.save: ours if it holds a dataset dict of this project
        try:
            d = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            return False
        return isinstance(d, dict) and "format_version" in d and "source" in d
    if head.startswith(b"{"):
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and str(obj.get("written_by", "")).startswith(SIGNATURE)
    with open(path, "rb") as f:
        first_line = f.readline(200)
    return f"written by {SIGNATURE}".encode() in first_line


def owned(path):
    """Whether the existing file at `path` is ours (see the rule above); a link or a folder never is."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    named = read_manifest(os.path.dirname(os.path.abspath(path)))
    return (named is not None and os.path.basename(path) in named) or marked(path)


def check_out(path, folder=False):
    """Raise DataError unless `path` may be written: nothing there, or ours (`folder`: a folder of ours), in a
    folder we can write in. Programs call it before their work, and every write does again."""
    if not path:
        raise DataError("--out is empty: give a file or folder name")
    if os.path.lexists(path):
        if folder:
            problem = not_ours_in_folder(path)
        elif os.path.islink(path) or not os.path.isfile(path):
            problem = f"{path} is {'a link' if os.path.islink(path) else 'not a regular file'}"
        elif not owned(path):
            problem = f"{path} was not written by this project"
        else:
            problem = None
        if problem:
            raise DataError(f"{problem}: left as it is; move it away or choose another --out")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise DataError(f"{parent} is not a folder: choose another --out")
    try:  # a folder we can write in?
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".tmp-"))
    except OSError as e:
        raise DataError(f"cannot write in {parent} ({e.strerror}): choose another --out") from None


def check_outside_project(path, allowed=OUTPUT_FOLDERS):
    """Raise DataError when `path`, links resolved, lies inside the project's sources rather than outside them
    or under one of its own output folders (`allowed`): a copy of the project must not land inside it."""
    real = os.path.realpath(path)
    if real != PROJECT and not real.startswith(PROJECT + os.sep):
        return
    inside = os.path.relpath(real, PROJECT)
    if inside.split(os.sep)[0] not in allowed:
        raise DataError(
            f"{path} lies inside the project's sources ({inside if inside != '.' else 'its top folder'}): "
            f"choose a folder outside the project, or under {allowed[0]}/"
        )


def atomic_write(path, write):
    """Every file the project writes: `write(f)` on a temporary file beside `path` (bytes), renamed to `path`,
    so none is ever half-written; an existing file is replaced only when it is ours (`owned`)."""
    check_out(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); what the project writes is for every reader
        check_out(path)  # still nothing there, or ours, now that the work is done
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_save(obj, path):
    """torch.save through atomic_write."""
    atomic_write(path, lambda f: torch.save(obj, f))


def write_manifest(folder, program):
    """Name every file now in `folder` in its MANIFEST: the proof that this project wrote them."""
    files = sorted(name for name in files_in(folder) if name != MANIFEST)
    manifest = {"written_by": SIGNATURE, "program": program, "files": files}
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def remove_ours(folder):
    """Delete what `folder`'s manifest names, then the folders left empty; whatever else is there stays.
    Returns what stayed."""
    named = read_manifest(folder) or set()
    for name in sorted(named) + [MANIFEST]:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
    for root, dirs, _ in os.walk(folder, topdown=False):
        for d in dirs:
            path = os.path.join(root, d)
            if not os.path.islink(path) and not os.listdir(path):
                os.rmdir(path)
    left = files_in(folder)
    if not left:
        os.rmdir(folder)
    return left


@contextlib.contextmanager
def atomic_folder(path, program=None):
    """`with atomic_folder(path) as folder:` the files go into a new staging `folder` beside `path`; when the
    block ends without error, MANIFEST names them and the folder replaces `path` (nothing there, or a folder
    of ours); after an error or Ctrl-C, the staging folder is removed and `path` is as it was."""
    program = program or os.path.basename(sys.argv[0]) or "python"
    check_out(path, folder=True)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(dir=parent, prefix=".tmp-")  # a fresh name: never anybody else's folder
    hold = None  # where the earlier folder waits while the new one moves in
    try:
        yield folder
        write_manifest(folder, program)
        os.chmod(folder, 0o755)  # mkdtemp makes it private (0700)
        if os.path.lexists(path):
            check_out(path, folder=True)  # still ours, now that the work is done
            hold = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
            os.rename(path, os.path.join(hold, "earlier"))
        os.rename(folder, path)
    except BaseException:
        if hold and os.path.lexists(os.path.join(hold, "earlier")) and not os.path.lexists(path):
            os.rename(os.path.join(hold, "earlier"), path)  # stopped between the two renames: it goes back
        if hold:
            os.rmdir(hold)
        shutil.rmtree(folder, ignore_errors=True)  # the staging folder: made and filled by this process
        raise
    if hold:
        left = remove_ours(os.path.join(hold, "earlier"))
        if left:
            print(
                f"note: {hold}/earlier keeps {len(left)} file(s) that appeared in {path} while it was written"
            )
        else:
            os.rmdir(hold)


# --- What the training scripts share: the run's name, flag ranges, batches, divergence ----------------------


def run_name(script, backbone, weighted=False, seed=0):
    """The name of a run's folder: <script>-<backbone>[-weighted]-seed<k>, e.g. 'tt_agg-resnet-seed0' or
    'visual_only-vgg-weighted-seed1'. Seeds sit side by side and never overwrite each other. A retrieval's
    `script` is 'retrieve' or 'retrieve-sound-to-image', and k the seed its towers were trained with:
    'retrieve-resnet-seed0', 'retrieve-resnet-sound-to-image-seed0'."""
    name, _, direction = script.partition("-")
    parts = [name, backbone]
    if direction:
        parts.append(direction)
    if weighted:
        parts.append("weighted")
    parts.append(f"seed{seed}")
    return "-".join(parts)


# The training flags' ranges, checked before any work: flag: (in range?, the range in words).
FLAGS = {
    "epochs": (lambda v: v >= 1, "1 or more"),
    "batch_size": (lambda v: v >= 2, "2 or more (batch normalisation cannot train on one example)"),
    "lr": (lambda v: 0 < v <= torch.finfo().max, "a positive number, at most float32's largest (3.4e38)"),
    "momentum": (lambda v: 0 <= v < 1, "from 0 to below 1"),
    "seed": (lambda v: 0 <= v < 2**63, "from 0 to 2**63 - 1"),  # torch.manual_seed takes a 64-bit integer
}


def check_flags(args):
    """Raise DataError naming the first flag of `args` (from argparse) outside its range in FLAGS."""
    for name, (ok, allowed) in FLAGS.items():
        if hasattr(args, name) and not ok(getattr(args, name)):
            raise DataError(f"--{name.replace('_', '-')} must be {allowed}, got {getattr(args, name)}")


def batches(order, batch_size):
    """`order` (N,) in batches; a lone last example joins the one before (batch norm cannot train on one)."""
    parts = list(order.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2:] = [order[-batch_size - 1 :]]
    return parts


def check_finite(values, epoch=None):
    """Raise FloatingPointError if an epoch's losses (steps,) or a model's outputs (no `epoch`: no loss sees
    the last step's result) hold a NaN or an infinity: a diverged run stops before anything is saved."""
    bad = torch.nonzero(~torch.isfinite(values)).tolist()
    if not bad:
        return
    if epoch:
        step = bad[0][0]
        raise FloatingPointError(
            f"the training loss became {values[step].item()} at epoch {epoch}, step {step + 1}: lower --lr, "
            f"or check the data"
        )
    raise FloatingPointError("the model's outputs are NaN or infinite (its weights overflowed): lower --lr")


def main(argv=None):
    """`python data.py toy ...` and `python data.py prepare ROOT ...`: handed over to dataset_sources/."""
    if argv is None:
        argv = sys.argv[1:]
    parser = argparse.ArgumentParser(
        prog="data.py",
        usage="%(prog)s [-h] {toy,prepare} ...",
        description="Make the dataset file every script reads.",
    )
    parser.add_argument(
        "command",
        choices=["toy", "prepare"],
        help="toy: synthesise the toy Greatest Hits; "
        "prepare: convert the unpacked real one (`python data.py toy --help`: their flags)",
    )
    command = parser.parse_args(argv[:1]).command
    if command == "toy":
        dataset_source("toy").main(argv[1:])
    else:
        dataset_source("greatest_hits").main(argv[1:])


if __name__ == "__main__":
    main()
