"""Sound network: spectrogram -> 1 of 17 materials (paper 3.3.1, Table 2, Figure 5 top row).

    python sound_only.py --backbone resnet

The baseline for the multimodal FC_AGG model (fc_agg.py): the same task, the material of one hit's sound,
from the sound alone. Each clip's square log-mel spectrogram (data.spectrogram) goes through one tower
with 17 outputs, trained with cross-entropy.
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
    import torch.nn.functional as F

    import backbones
    import data
    import metrics
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

SCRIPT = "sound_only"
METRICS = ["accuracy"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--backbone",
        choices=sorted(backbones.BACKBONES),
        default="resnet",
        help="network architecture (paper 3.2)",
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
        help="clips per step, 2 or more (the paper does not say); a last batch of one joins the "
        "batch before it",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and batch order")
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
    parser.add_argument("--out", default="runs", help="the run is saved in OUT/sound_only-BACKBONE-seedSEED/")
    return parser, parser.parse_args(argv)


def make_examples(ds, videos):
    """Every clip of `videos`; the label is the clip's material.

    Returns (sound_video, sound_clip, label), each (len(videos) * 10,), on the device.
    """
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)  # (M,) every clip of these videos
    clip_index = torch.arange(n, device=videos.device).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]  # (M,)
    return clip_video, clip_index, clip_material


def batch(ds, examples, idx):
    """The tensors of the examples at positions `idx`: index slices of what is already on the device."""
    sound_video, sound_clip, label = examples
    sound = ds.spectrograms[sound_video[idx], sound_clip[idx]]  # (B, 1, S, S)
    return sound, label[idx]


def train_epoch(model, optimizer, ds, examples, batch_size, epoch, precision):
    model.train()
    order = torch.randperm(len(examples[-1]), device=examples[-1].device)
    losses = []
    for idx in data.batches(order, batch_size):
        sound, label = batch(ds, examples, idx)
        with backbones.autocast(sound.device, precision):  # bf16 on CUDA: the tower's arithmetic only
            logits = model(sound)  # (B, 17)
        loss = F.cross_entropy(logits.float(), label)  # the loss in fp32
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # kept on the device: no synchronisation per step
    losses = torch.stack(losses)
    data.check_finite(losses, epoch)  # a run that diverged stops here, before anything is saved
    return losses.mean().item()


@torch.no_grad()
def evaluate(model, ds, examples, batch_size, precision):
    """Accuracy of `model` on fixed examples, and the predicted material of each."""
    model.eval()
    positions = torch.arange(len(examples[-1]), device=examples[-1].device).split(batch_size)
    with backbones.autocast(ds.frames.device, precision):
        logits = torch.cat([model(batch(ds, examples, idx)[0]) for idx in positions]).float()
    data.check_finite(logits)  # a model that diverged at its last step is not scored
    prediction = logits.argmax(1)
    return {"accuracy": metrics.accuracy(prediction, examples[-1])}, prediction


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
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    deterministic = " (deterministic)" if args.deterministic else ""
    print(
        f"{SCRIPT}: {ds.describe()}; device {device}{deterministic}, {args.precision}; "
        f"{backbones.BACKBONES[args.backbone]}; {args.epochs} epochs",
        flush=True,
    )

    model = backbones.tower(args.backbone, 1, data.NUM_MATERIALS)  # spectrogram -> 17 logits
    model = model.to(device, memory_format=backbones.memory_format(args.precision))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    train_examples = make_examples(ds, ds.videos("train"))
    val_examples = make_examples(ds, ds.videos("val"))
    test_examples = make_examples(ds, ds.videos("test"))
    curves = []
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        tick = time.time()
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
            + f" | {samples_per_s:.0f} clips/s | {time.time() - start:.0f} s",
            flush=True,
        )

    val, _ = evaluate(model, ds, val_examples, args.batch_size, args.precision)
    test, test_prediction = evaluate(model, ds, test_examples, args.batch_size, args.precision)
    correct = (
        test_prediction == test_examples[-1]
    )  # a clip belongs to its video: the test split's 95% interval
    interval = metrics.test_interval(correct, torch.ones_like(correct), test_examples[0], "accuracy")
    baseline = {
        s: metrics.majority_baseline(train_examples[-1], examples[-1])
        for s, examples in [("val", val_examples), ("test", test_examples)]
    }
    paper = metrics.PAPER[(SCRIPT, args.backbone, False)]
    confusion = metrics.confusion_matrix(test_prediction, test_examples[-1], data.NUM_MATERIALS)
    print("test confusion matrix (rows true material, columns predicted; IDs as in Table 1):")
    print("\n".join(metrics.format_confusion(confusion)))
    metrics.print_row(
        f"Table 2 (sound network), {backbones.BACKBONES[args.backbone]}, {ds.source} data",
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
        "test_confusion": confusion.tolist(),
        "peak_memory_mb": metrics.peak_memory_mb(device),
    }
    checkpoint = {**run, "sound_tower": model.state_dict()}
    figure = metrics.confusion_figure(
        confusion,
        data.MATERIALS,
        f"Figure 5: sound only, {backbones.BACKBONES[args.backbone]}, test set, {ds.source} data",
    )
    data.save_run(out, record, checkpoint, [("confusion.png", figure)])  # together, or not at all
    print(f"saved {out}/metrics.json, model.pt and confusion.png")


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
