"""What every script shares: the dataset file read and loaded onto the device, spectrograms, the image
transform; the run folder's name, claimed before training and saved at the end; the checks of divergence.

The dataset file is a dict of TENSORS, video_ids, sample_rate, materials, source ('toy' or 'greatest-hits'),
format_version, seed and size, made by `python data.py toy` or `python data.py prepare ROOT`; its contract
(Table 1's IDs, ten clips, the sample rate, the splits, TENSORS and `check_dataset`) is in
dataset_sources/contract.py, which both sources read too. Files are read with weights_only=True: a file from
a stranger is data, never code. What is written goes through safe_files/ownership.py: nothing half-written,
nothing replaced that this project did not write.
"""

import argparse
import hashlib
import math
import os
import signal
import sys

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import torch
    import torch.nn.functional as F
    import torchaudio

    from dataset_sources import toy

    # The dataset's constants and the flags' check, defined in dataset_sources/contract.py and used by every
    # script as data.MATERIALS, data.CLIPS_PER_VIDEO, data.check_flags, ...
    from dataset_sources.contract import CLIPS_PER_VIDEO as CLIPS_PER_VIDEO
    from dataset_sources.contract import FLAGS as FLAGS
    from dataset_sources.contract import FORMAT_VERSION as FORMAT_VERSION
    from dataset_sources.contract import MATERIAL_ID as MATERIAL_ID
    from dataset_sources.contract import MATERIALS as MATERIALS
    from dataset_sources.contract import NUM_MATERIALS as NUM_MATERIALS
    from dataset_sources.contract import REBUILD, SPLITS, TENSORS, TOY_DEFAULTS, check_dataset, toy_path
    from dataset_sources.contract import SAMPLE_RATE as SAMPLE_RATE
    from dataset_sources.contract import check_flags as check_flags
    from safe_files import ownership
    from safe_files.ownership import DataError
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

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
        ownership.atomic_save(toy.make_toy(**TOY_DEFAULTS), path)
    return path


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


# --- What the training scripts share: the run folder, batches, divergence --------------------------------


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


def claim_run_folder(out):
    """Raise DataError unless a run can be saved at `out`: nothing there yet, or a run folder this project
    wrote (safe_files/ownership.py). Called before training, so that a folder in the way is found now."""
    ownership.claim(out, folder=True)


def save_run(out, record, checkpoint=None, figures=(), sounds=()):
    """Save a run in `out`, all its files together or none (an earlier run folder stays as it was until then):
    `record` as metrics.json, `checkpoint` as model.pt, each (name, matplotlib figure) of `figures` as a PNG
    and each (name, (N,) int16 clip) of `sounds` as a WAV."""
    with ownership.atomic_folder(out) as folder:
        ownership.write_json(record, os.path.join(folder, "metrics.json"))
        if checkpoint is not None:
            ownership.atomic_save(checkpoint, os.path.join(folder, "model.pt"))
        for name, fig in figures:
            ownership.save_png(fig, os.path.join(folder, name))
        for name, clip in sounds:
            ownership.write_wav(clip, SAMPLE_RATE, os.path.join(folder, name))


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
        toy.main(argv[1:])
    else:
        from dataset_sources import greatest_hits  # here only: the one module that needs PyAV

        greatest_hits.main(argv[1:])


if __name__ == "__main__":
    main()
