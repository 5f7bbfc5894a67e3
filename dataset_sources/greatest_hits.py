"""The real Greatest Hits: `python data.py prepare ROOT` turns the unpacked archive into a dataset file.

The archive (Owens et al., "Visually Indicated Sounds", CVPR 2016; CC BY 4.0) comes as `vis-data-256.zip`
(low resolution, about 20 GB, what most people use) or `vis-data.zip` (full resolution, 40-50 GB), from the
dataset's page. The low-resolution one unpacks to vis-data-256/vis-data-256/: ROOT may be either level, or
the folder unzipped into -- `find_root` looks for train.txt up to two levels down. That folder is flat:

    train.txt, test.txt       one recording id per line (e.g. 2015-02-16-16-49-06, 2015-09-28-00-28-26-247);
                              no validation list (the paper: 586 train + 147 validation + 244 test = 977)
    <id>_denoised.wav         the denoised sound, 96 kHz (channels and sample format vary: mixed to mono,
                              int or float accepted)
    <id>_denoised.mp4         the video with that sound, about 29.97 fps, 456x256 in the low-resolution
                              archive; the frame is taken from it (no frames are shipped)
    <id>_times.txt            the annotations, one event per line: `time material action reaction`
    <id>_mic.*, <id>_denoised_thumb.mp4   the raw microphone and a preview: not read

`<id>_times.txt` lines look like `2.677438 ceramic hit static` or `5.120340 None None None`: the time in
seconds from the start, then the material (lowercase and hyphenated, as data.MATERIALS; `None` when not
annotated), the action (`hit`, `scratch` or `None`) and the reaction (`static`, or others; not used).
Recordings hold from none to about fifty hits with a material (median about 16): padding a recording's clips
with repeated hits, and leaving out one without any, are common cases, not corner cases.

Two passes: first the lists and every annotation file are read and checked (seconds, so that a typo stops
the run before the long part), then each recording's sound and frame are decoded with PyAV (minutes), under
a progress bar. The choices the paper leaves open are made here, each in one function: which hits become
clips (`choose_hits`), which frame is the picture (`frame_time`), how train.txt is split into train and
validation (`split_train_list`).
"""

import argparse
import glob
import math
import os
import re
import time
import zlib
from dataclasses import dataclass

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from tqdm import tqdm

from dataset_sources import summary
from dataset_sources.contract import (
    CLIPS_PER_VIDEO,
    FORMAT_VERSION,
    MATERIAL_ID,
    MATERIALS,
    NUM_MATERIALS,
    SAMPLE_RATE,
    SPLITS,
    check_dataset,
    check_flags,
)
from safe_files.ownership import SIGNATURE, DataError, atomic_save, check_out

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
        raise DataError(
            f"ROOT {root!r} is not a folder: give the folder you unpacked vis-data-256.zip into "
            f"(the one holding train.txt and test.txt, or one above it)"
        )
    for depth in range(3):
        found = sorted(glob.glob(os.path.join(glob.escape(root), *["*"] * depth, "train.txt")))
        if len(found) > 1:
            raise DataError(f"several train.txt under {root} ({', '.join(found)}): give the folder to use")
        if found:
            folder = os.path.dirname(found[0])
            if not os.path.isfile(os.path.join(folder, "test.txt")):
                raise DataError(f"{folder} has train.txt but no test.txt: unpack the whole archive again")
            return folder
    raise DataError(
        f"no train.txt in {root} or the two folder levels below it: give the folder of the "
        f"unpacked archive that holds train.txt and test.txt"
    )


def read_id_list(path):
    """[(recording id, line number)] from train.txt or test.txt: one bare id per line (a file name without a
    folder, so that `./ID` cannot list a recording twice nor reach outside ROOT), blank lines skipped."""
    ids = []
    # utf-8-sig: a byte-order mark (as some Windows editors write) is not part of the first id; bytes that are
    # not text fail the checks below
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) > 1 or (fields and not re.fullmatch(r"[\w-][\w.-]*", fields[0], re.ASCII)):
                raise DataError(
                    f"{path} line {n}: expected one bare recording id (letters, digits, '-', '_', '.'; "
                    f"no folder), found {line.strip()[:80]!r}: fix or delete this line"
                )
            if fields:
                ids.append((fields[0], n))
    return ids


def read_times(path):
    """[Event] from `<id>_times.txt`, checked line by line (blank lines skipped)."""
    events = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # a binary file fails the checks below
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            time_ = seconds(fields)
            if not math.isfinite(time_):
                raise DataError(
                    f"{path} line {n}: expected four fields 'time material action reaction' "
                    f"with a number first, found {line.strip()[:80]!r}: fix or delete this line"
                )
            material = None if fields[1] == "None" else fields[1]
            action = None if fields[2] == "None" else fields[2]
            if material is not None and material not in MATERIAL_ID:
                raise DataError(
                    f"{path} line {n}: unknown material {material!r} (known: "
                    f"{', '.join(sorted(MATERIAL_ID))}, or None): fix this line"
                )
            events.append(Event(time_, material, action))
    return events


def seconds(fields):
    """The time of an annotation line (split in fields); NaN unless it is four fields with a number first."""
    if len(fields) != 4:
        return math.nan
    try:
        return float(fields[0])
    except ValueError:
        return math.nan


def read_annotations(folder):
    """{id: (split name, [Event])} for every id of train.txt and test.txt, after checking that each id is
    listed once and has its three files. Reads only text: fast, so errors show before any decoding."""
    recordings = {}
    where = {}  # id -> where it is listed, for the message when it is listed twice
    for list_name in ["train", "test"]:
        list_path = os.path.join(folder, f"{list_name}.txt")
        for rid, n in read_id_list(list_path):
            if rid in where:
                raise DataError(
                    f"{list_path} line {n}: {rid} is already listed ({where[rid]}): "
                    f"list each recording once, in train.txt or test.txt"
                )
            where[rid] = f"{list_name}.txt line {n}"
            for suffix in MEDIA:
                if not os.path.isfile(os.path.join(folder, rid + suffix)):
                    raise DataError(
                        f"{list_path} line {n}: recording {rid} has no {rid + suffix} in {folder}: "
                        f"unpack the whole archive, or delete this line"
                    )
            recordings[rid] = (list_name, read_times(os.path.join(folder, rid + "_times.txt")))
    if not recordings:
        raise DataError(f"train.txt and test.txt in {folder} list no recordings")
    return recordings


def media_error(path, problem):
    """The one-line error for a recording's damaged or missing media file."""
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
    return sorted(
        (e for e in events if e.action == "hit" and e.material is not None and 0 <= e.time <= duration),
        key=lambda e: e.time,
    )


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
    """(SAMPLE_RATE,) int16: the second of `sound` centred on t (the hit at sample SAMPLE_RATE // 2),
    zero-padded where it runs past either end of the file -- not shifted, which would move the hit off the
    centre."""
    n = SAMPLE_RATE
    begin = round(t * SAMPLE_RATE) - n // 2
    clip = torch.zeros(n)
    lo = max(begin, 0)
    hi = min(begin + n, len(sound))
    if hi > lo:
        clip[lo - begin : hi - begin] = sound[lo:hi]
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
    return {
        "frame": read_frame(os.path.join(folder, rid + "_denoised.mp4"), t),
        "clips": torch.stack([cut_clip(sound, h.time) for h in chosen]),  # (10, N)
        "clip_materials": torch.tensor([MATERIAL_ID[h.material] for h in chosen]),
        "hit_times": torch.tensor([h.time for h in chosen], dtype=torch.float64),
        "frame_time": t,
        "padded": len(hits) < CLIPS_PER_VIDEO,
    }


def split_train_list(materials, seed):
    """{id: 0 or 1}: 20% of the (kept) train.txt recordings become validation, the paper's 586/147 of 733.

    `materials`: {id: set of the material IDs annotated in it}. The draw is stratified and seeded: for each
    material, rarest first, that no validation recording shows yet, one recording showing it moves to
    validation, if the 20% allows and each of that recording's materials keeps a training recording; the rest
    of the 20% is drawn at random among the recordings that can move so (in a list too small for that, among
    all). So a material in two or more recordings is in both splits, as in the paper's Figure 2. Ids are
    sorted first: the order of the lines in train.txt does not matter.
    """
    ids = sorted(materials)
    rng = np.random.default_rng([seed, 977])
    size = round(0.2 * len(ids))
    val = set()
    holders = {m: [r for r in ids if m in materials[r]] for m in range(NUM_MATERIALS)}

    def movable(r):  # to validation, leaving each of its materials a training recording
        return r not in val and all(len([h for h in holders[m] if h not in val]) >= 2 for m in materials[r])

    for m in sorted(holders, key=lambda m: (len(holders[m]), m)):
        candidates = [r for r in holders[m] if movable(r)]
        if len(val) < size and not val & set(holders[m]) and candidates:
            val.add(candidates[rng.integers(len(candidates))])
    order = [ids[i] for i in rng.permutation(len(ids))]
    for r in order:  # the rest of the 20% at random, among the recordings that can move so ...
        if len(val) < size and movable(r):
            val.add(r)
    for r in order:  # ... and, in a list too small for that, any
        if len(val) < size and r not in val:
            val.add(r)
    return {rid: SPLITS["val"] if rid in val else SPLITS["train"] for rid in ids}


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
    kept = []  # the ids with a usable hit, in order
    left_out = []
    padded = 0
    # The long part, under a progress bar on stderr (tqdm ends its line, also after an error).
    for rid in tqdm(ids, desc="preparing", unit="recording"):
        _, events = recordings[rid]
        r = prepare_recording(folder, rid, events, seed)
        if r is None:
            left_out.append(rid)
            continue
        k = len(kept)
        frames[k] = r["frame"]
        clips[k] = r["clips"]
        clip_materials[k] = r["clip_materials"]
        hit_times[k] = r["hit_times"]
        frame_times[k] = r["frame_time"]
        padded += r["padded"]
        # Image label (3.3.2, multi-label): every material annotated anywhere in the recording, whatever
        # the action -- what the annotations say is in view; a material seen but never touched is missed.
        labels[k, [MATERIAL_ID[e.material] for e in events if e.material is not None]] = True
        kept.append(rid)
    val = split_train_list(
        {
            rid: {MATERIAL_ID[e.material] for e in recordings[rid][1] if e.material is not None}
            for rid in kept
            if recordings[rid][0] == "train"
        },
        seed,
    )
    split = torch.tensor([val.get(rid, SPLITS["test"]) for rid in kept], dtype=torch.int8)
    for name, s in SPLITS.items():
        if not (split == s).any():
            raise DataError(
                f"no recording left for the {name} split ({len(kept)} usable of {V}): "
                f"train.txt needs at least 3 and test.txt 1 recording with usable hits (a hit "
                f"with a material, inside the sound)"
            )
    if len(kept) < V:  # drop the left-out rows (a copy: torch.save would write a slice's whole storage)
        frames = frames[: len(kept)].clone()
        labels = labels[: len(kept)].clone()
        clips = clips[: len(kept)].clone()
        clip_materials = clip_materials[: len(kept)].clone()
        hit_times = hit_times[: len(kept)].clone()
        frame_times = frame_times[: len(kept)].clone()
    d = {
        "frames": frames,
        "image_labels": labels,
        "clips": clips,
        "clip_materials": clip_materials,
        "split": split,
        "video_ids": kept,
        "sample_rate": SAMPLE_RATE,
        "materials": list(MATERIALS),
        "source": "greatest-hits",
        "format_version": FORMAT_VERSION,
        "written_by": f"{SIGNATURE} data.py",  # the mark that lets data.py replace it (safe_files/)
        "seed": seed,
        "size": FRAME_SIZE,
        "hit_times": hit_times,
        "frame_times": frame_times,
    }
    check_dataset(d, "the prepared dataset")
    return d, {"padded": padded, "left_out": left_out}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="data.py prepare",
        description="Turn the unpacked Greatest Hits (vis-data-256.zip or vis-data.zip) "
        "into the dataset file every script reads with --data: one 224x224 "
        "frame and ten one-second hit clips per recording; test.txt is the "
        "test set, train.txt is split 80/20 into train and validation with "
        "--seed, stratified by material.",
    )
    parser.add_argument(
        "root",
        metavar="ROOT",
        help="the folder holding train.txt and test.txt, or one or two "
        "levels above it (the archive nests vis-data-256/vis-data-256)",
    )
    parser.add_argument(
        "--out",
        default=os.path.join("data", "greatest_hits.pt"),
        help="output file (default %(default)s); written only when complete",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the validation split and of the choice of hits, 0 or more (default %(default)s)",
    )
    args = parser.parse_args(argv)
    start = time.time()
    try:
        check_flags(args)  # --seed: the range every script accepts (numpy's generators take none below 0)
        check_out(args.out)  # before the long decoding pass, not after it
        d, report = prepare(args.root, args.seed)
        atomic_save(d, args.out)
    except DataError as e:
        parser.exit(2, f"error: {e}\n")
    except KeyboardInterrupt:  # nothing was half-written (atomic_save): say so, without a traceback
        parser.exit(130, f"interrupted: nothing written (an existing {args.out} is unchanged)\n")
    took = time.time() - start
    left = report["left_out"]
    print(
        f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.1f} MiB) in {took:.1f} s "
        f"({took / (len(d['video_ids']) + len(left)):.2f} s per recording)"
    )
    print("\n".join(summary(d)))
    print(f"recordings padded (fewer than {CLIPS_PER_VIDEO} usable hits, so hits reused): {report['padded']}")
    if left:
        print(f"recordings left out (no usable hit): {len(left)} ({', '.join(left)})")
    else:
        print("recordings left out (no usable hit): 0")
