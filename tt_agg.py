"""TT_AGG: the two-tower model, trained on balanced image-sound pairs (paper 3.4.2, Table 5).

    python tt_agg.py --backbone resnet

An image tower embeds the frame and a sound tower embeds one clip's spectrogram, 128 numbers each. Both
embeddings are L2-normalised; their dot product (a cosine, in [-1, 1]) is scaled to [0, 1] and read as the
probability that the sound belongs to the image, trained with binary cross-entropy. Every positive pair (a
frame with one of its own video's sounds) is matched by one negative (the same frame with a sound whose
material is not in the frame), so the two classes are balanced and the loss needs no reweighting.
The trained towers are what retrieve.py uses to recommend sounds for an image (paper 3.5).
"""

import argparse
import os
import signal
import sys
import time

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import backbones
    import data
    import metrics
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

SCRIPT = "tt_agg"
METRICS = ["accuracy", "precision", "recall", "f1"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--backbone",
        choices=sorted(backbones.BACKBONES),
        default="resnet",
        help="tower architecture, the same for both towers (paper 3.4.1)",
    )
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (paper: 30)")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (paper: 0.01)")
    parser.add_argument(
        "--momentum",
        type=float,
        default=0.9,
        help="SGD momentum; the paper does not say: 0.9, the usual value. No weight decay, "
        "as the paper names no regularisation",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="pairs per step, 2 or more (the paper does not say); a last batch of one joins the "
        "batch before it",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, negatives, flips and batch order")
    parser.add_argument(
        "--data",
        default=None,
        help="a dataset file made by data.py (default: the toy dataset, built on first use)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cuda", "cpu"],
        default="auto",
        help="auto: CUDA when a GPU is visible, else CPU",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="on CUDA, trade speed for repeatable runs (no cudnn autotuning, deterministic "
        "kernels); CPU runs repeat to the last digit anyway",
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto: bf16 autocast and channels-last on CUDA, fp32 on the CPU; fp32 turns both off",
    )
    parser.add_argument("--out", default="runs", help="the run is saved in OUT/tt_agg-BACKBONE-seedSEED/")
    return parser, parser.parse_args(argv)


class TwoTower(nn.Module):
    """(frame, spectrogram) -> probability that the sound belongs to the frame's scene."""

    def __init__(self, backbone):
        super().__init__()
        self.image_tower = backbones.tower(backbone, 3, backbones.EMBEDDING_DIM)
        self.sound_tower = backbones.tower(backbone, 1, backbones.EMBEDDING_DIM)

    def forward(self, image, sound):
        image_embedding = F.normalize(self.image_tower(image), dim=1)  # (B, 128), unit length
        sound_embedding = F.normalize(self.sound_tower(sound), dim=1)  # (B, 128), unit length
        cosine = (image_embedding * sound_embedding).sum(1)  # (B,) in [-1, 1]
        return (cosine + 1) / 2  # (B,) in [0, 1]


def make_examples(ds, videos, generator):
    """Every clip of `videos` with its own frame (label 1), and for each one negative (label 0): the same
    frame with a clip of the same split whose material is absent from the frame, drawn with `generator`.

    Returns (frame_video, sound_video, sound_clip, label), each (2 * len(videos) * 10,), on the device.
    """
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)  # (M,) every clip of these videos
    clip_index = torch.arange(n, device=videos.device).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]  # (M,)
    absent = ~ds.image_labels[videos][:, clip_material]  # (V, M) clip's material not in frame
    negative = torch.multinomial(absent.float(), n, replacement=True, generator=generator).flatten()  # (M,)
    frame_video = torch.cat([clip_video, clip_video])
    sound_video = torch.cat([clip_video, clip_video[negative]])
    sound_clip = torch.cat([clip_index, clip_index[negative]])
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))]).to(videos.device)
    return frame_video, sound_video, sound_clip, label


def check_negative_sounds(ds, split):
    """Raise DataError if a frame of `split` shows every material heard in that split: it has no negative."""
    videos = ds.videos(split)
    heard = torch.zeros(data.NUM_MATERIALS, dtype=torch.bool, device=videos.device)
    heard[ds.clip_materials[videos].flatten()] = True  # (17,) the materials heard in the split
    hopeless = (ds.image_labels[videos] | ~heard).all(1)  # (V,) frames showing every heard material
    if hopeless.any():
        video = ds.video_ids[videos[hopeless][0]]
        raise data.DataError(
            f"video {video} has no negative sound: it shows every material heard in its split; use more "
            f"videos (e.g. `python data.py toy --videos 70`)"
        )


def batch(ds, examples, idx, train):
    """The tensors of the examples at positions `idx`: index slices of what is already on the device."""
    frame_video, sound_video, sound_clip, label = examples
    image = data.image_transform(ds.frames[frame_video[idx]], ds.size, train)  # (B, 3, S, S)
    sound = ds.spectrograms[sound_video[idx], sound_clip[idx]]  # (B, 1, S, S)
    return image, sound, label[idx]


def train_epoch(model, optimizer, ds, examples, batch_size, epoch, precision):
    model.train()
    order = torch.randperm(len(examples[-1]), device=examples[-1].device)
    losses = []
    for idx in data.batches(order, batch_size):
        image, sound, label = batch(ds, examples, idx, train=True)
        with backbones.autocast(image.device, precision):  # bf16 on CUDA: the towers' arithmetic only
            probability = model(image, sound)  # (B,)
        loss = F.binary_cross_entropy(probability.float(), label)  # fp32, outside autocast (which refuses it)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # kept on the device: no synchronisation per step
    losses = torch.stack(losses)
    data.check_finite(losses, epoch)  # a run that diverged stops here, before anything is saved
    return losses.mean().item()


@torch.no_grad()
def evaluate(model, ds, examples, batch_size, precision):
    """Scores of `model` on fixed examples, and the prediction of each: a pair is predicted positive when its
    probability exceeds 0.5."""
    model.eval()
    positions = torch.arange(len(examples[-1]), device=examples[-1].device).split(batch_size)
    with backbones.autocast(ds.frames.device, precision):
        probability = torch.cat(
            [model(*batch(ds, examples, idx, train=False)[:2]) for idx in positions]
        ).float()
    data.check_finite(probability)  # a model that diverged at its last step is not scored
    prediction = probability > 0.5
    return metrics.binary_scores(prediction, examples[-1].bool()), prediction


def main():
    parser, args = parse_args()
    out = os.path.join(args.out, data.run_name(SCRIPT, args.backbone, seed=args.seed))
    try:
        data.check_flags(args)
        data.claim_run_folder(out)  # where the run goes: found out now, not after training
        device = data.pick_device(args.device, args.deterministic)
        args.precision = backbones.precision(args.precision, device)  # recorded with the run
        torch.manual_seed(args.seed)
        ds = data.load(args.data, device)
        for split in data.SPLITS:
            check_negative_sounds(ds, split)  # before training, not at epoch 1
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    deterministic = " (deterministic)" if args.deterministic else ""
    print(
        f"{SCRIPT}: {ds.describe()}; device {device}{deterministic}, {args.precision}; "
        f"{backbones.BACKBONES[args.backbone]} towers; {args.epochs} epochs",
        flush=True,
    )

    model = TwoTower(args.backbone).to(device, memory_format=backbones.memory_format(args.precision))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    val_examples = make_examples(ds, ds.videos("val"), torch.Generator(device).manual_seed(args.seed + 1))
    test_examples = make_examples(ds, ds.videos("test"), torch.Generator(device).manual_seed(args.seed + 2))
    generator = torch.Generator(device).manual_seed(args.seed)  # the training negatives, new every epoch
    curves = []
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        tick = time.time()
        train_examples = make_examples(ds, ds.videos("train"), generator)
        train_loss = train_epoch(model, optimizer, ds, train_examples, args.batch_size, epoch, args.precision)
        samples_per_s = len(train_examples[-1]) / (time.time() - tick)
        val, _ = evaluate(model, ds, val_examples, args.batch_size, args.precision)
        curves.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                **{f"val_{k}": v for k, v in val.items()},
                "samples_per_s": samples_per_s,
                "elapsed_s": time.time() - start,
            }
        )
        print(
            f"epoch {epoch:2d}/{args.epochs} | train loss {train_loss:.4f} | val "
            + " ".join(f"{k} {v:.4f}" for k, v in val.items())
            + f" | {samples_per_s:.0f} pairs/s | {time.time() - start:.0f} s",
            flush=True,
        )

    val, _ = evaluate(model, ds, val_examples, args.batch_size, args.precision)
    test, prediction = evaluate(model, ds, test_examples, args.batch_size, args.precision)
    # A pair belongs to the video of its frame: the test split's 95% interval, drawing videos.
    interval = metrics.test_interval(prediction, test_examples[-1], test_examples[0], "accuracy")
    baseline = {
        "val": metrics.chance_baseline(val_examples[-1]),
        "test": metrics.chance_baseline(test_examples[-1]),
    }
    paper = metrics.PAPER[(SCRIPT, args.backbone, False)]
    metrics.print_row(
        f"Table 5 (TT_AGG), {backbones.BACKBONES[args.backbone]}, {ds.source} data",
        val,
        test,
        paper,
        baseline,
        METRICS,
        interval,
    )

    run = {
        "script": SCRIPT,
        "backbone": args.backbone,
        "args": vars(args),
        "data_fingerprint": ds.fingerprint,
    }
    record = {
        **run,
        "data": ds.describe(),
        "source": ds.source,
        "val": val,
        "test": test,
        "test_interval": interval,
        "curves": curves,
        "paper": paper,
        "baseline": baseline,
        "peak_memory_mb": metrics.peak_memory_mb(device),
    }
    checkpoint = {
        **run,
        "image_tower": model.image_tower.state_dict(),
        "sound_tower": model.sound_tower.state_dict(),
    }
    data.save_run(out, record, checkpoint)  # the run's files appear together or not at all
    print(f"saved {out}/metrics.json and model.pt")


if __name__ == "__main__":
    try:
        main()
    except (
        FloatingPointError,
        data.DataError,
    ) as e:  # diverged, or its folder taken meanwhile: nothing saved
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; the run folder is saved whole or not at all
        print("interrupted: nothing saved (an earlier run folder is unchanged)", file=sys.stderr)
        sys.exit(130)
