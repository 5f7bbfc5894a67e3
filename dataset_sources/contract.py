"""The dataset file's contract, read by both dataset sources (toy.py, greatest_hits.py) and by data.py.

Table 1's 17 materials, ten clips per video, the sample rate, the splits, the file's format version, its
TENSORS and `check_dataset`, which holds a file to all of them; the default toy's sizes and path; the ranges
of the flags every program shares (a seed, epochs, ...). The dataset file is a dict of TENSORS, video_ids,
sample_rate, materials, source ('toy' or 'greatest-hits'), format_version, seed and size, made by
`python data.py toy` or `python data.py prepare ROOT`. It sits below data.py and the sources, so that both
read one definition.
"""

import os

import torch

from safe_files.ownership import DataError

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


def toy_path(splits, size, seed, videos=None):
    """Where `python data.py toy` writes a toy by default, and where the scripts look for the default toy
    (TOY_DEFAULTS) when given no --data: named by its (train, val, test) `splits`, or by its number of
    `videos` when made with --videos (the paper's shares, each video's split drawn at random)."""
    if videos is not None:
        name = f"v{videos}"
    else:
        name = "-".join(map(str, splits))
    return os.path.join("data", f"toy-{name}-s{size}-seed{seed}.pt")


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
