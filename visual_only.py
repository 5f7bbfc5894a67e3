"""Visual network: frame -> which of the 17 materials it shows (paper 3.3.2, Table 3).

    python visual_only.py --backbone resnet
    python visual_only.py --backbone resnet --weighted

Multi-label classification: one tower with 17 outputs, each the logit of "this material is in the frame",
trained with binary cross-entropy. Labels are sparse (a frame shows about 1.7 of 17 materials, so about 9
negatives for each positive), which is why the paper reports precision, recall and F1 beside accuracy and
trains a second run whose loss weighs the positives up (`--weighted`, BCEWithLogitsLoss's pos_weight).
The baseline for the two-tower model (tt_agg.py).
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

SCRIPT = "visual_only"
METRICS = ["accuracy", "precision", "recall", "f1"]


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
    parser.add_argument(
        "--weighted",
        action="store_true",
        help="weigh each material's positive labels by negatives/positives of that material "
        "in the training split (pos_weight), the paper's second run",
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
        default=16,
        help="frames per step, 2 or more (the paper does not say; one frame per video, so fewer "
        "examples per epoch than the sound scripts); a last batch of one joins the one before",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, flips and batch order")
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
    parser.add_argument(
        "--out", default="runs", help="the run is saved in OUT/visual_only-BACKBONE[-weighted]-seedSEED/"
    )
    return parser, parser.parse_args(argv)


def positive_weights(labels):
    """(17,) negatives / positives of each material over the training frames (`labels`, (V, 17) bool):
    with it, the positives of each material weigh as much in the loss as its negatives. A material with no
    training positive gets weight 1 (there is nothing to weigh up)."""
    positives = labels.sum(0).float()
    negatives = len(labels) - positives
    return torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives))


def make_examples(ds, videos):
    """The frame of each of `videos`; the label is every material the frame shows.

    Returns (frame_video, label): (len(videos),) and (len(videos), 17) bool, on the device.
    """
    return videos, ds.image_labels[videos]


def batch(ds, examples, idx, train):
    """The tensors of the examples at positions `idx`: index slices of what is already on the device."""
    frame_video, label = examples
    image = data.image_transform(ds.frames[frame_video[idx]], ds.size, train)  # (B, 3, S, S)
    return image, label[idx].float()  # (B, 17)


def train_epoch(model, optimizer, ds, examples, batch_size, pos_weight, epoch, precision):
    model.train()
    order = torch.randperm(len(examples[-1]), device=examples[-1].device)
    losses = []
    for idx in data.batches(order, batch_size):
        image, label = batch(ds, examples, idx, train=True)
        with backbones.autocast(image.device, precision):  # bf16 on CUDA: the tower's arithmetic only
            logits = model(image)  # (B, 17)
        loss = F.binary_cross_entropy_with_logits(logits.float(), label, pos_weight=pos_weight)  # in fp32
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # kept on the device: no synchronisation per step
    losses = torch.stack(losses)
    data.check_finite(losses, epoch)  # a run that diverged stops here, before anything is saved
    return losses.mean().item()


@torch.no_grad()
def evaluate(model, ds, examples, batch_size, precision):
    """Scores over every (frame, material) entry, and the prediction of each: a material is predicted present
    when its probability exceeds 0.5 (logit > 0)."""
    model.eval()
    positions = torch.arange(len(examples[-1]), device=examples[-1].device).split(batch_size)
    with backbones.autocast(ds.frames.device, precision):
        logits = torch.cat(
            [model(batch(ds, examples, idx, train=False)[0]) for idx in positions]
        ).float()  # (V, 17)
    data.check_finite(logits)  # a model that diverged at its last step is not scored
    prediction = logits > 0  # (V, 17)
    return metrics.binary_scores(prediction, examples[-1]), prediction


def main():
    parser, args = parse_args()
    out = os.path.join(args.out, data.run_name(SCRIPT, args.backbone, args.weighted, args.seed))
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
        f"{backbones.BACKBONES[args.backbone]}; {'weighted' if args.weighted else 'unweighted'} loss; "
        f"{args.epochs} epochs",
        flush=True,
    )

    model = backbones.tower(args.backbone, 3, data.NUM_MATERIALS)  # frame -> 17 logits
    model = model.to(device, memory_format=backbones.memory_format(args.precision))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    train_examples = make_examples(ds, ds.videos("train"))
    val_examples = make_examples(ds, ds.videos("val"))
    test_examples = make_examples(ds, ds.videos("test"))
    pos_weight = None  # unweighted: every label counts the same
    if args.weighted:
        pos_weight = positive_weights(train_examples[-1])
        print("pos_weight per material: " + " ".join(f"{w:.1f}" for w in pos_weight.tolist()))
    curves = []
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        tick = time.time()
        train_loss = train_epoch(
            model, optimizer, ds, train_examples, args.batch_size, pos_weight, epoch, args.precision
        )
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
            + f" | {samples_per_s:.0f} frames/s | {time.time() - start:.0f} s",
            flush=True,
        )

    val, _ = evaluate(model, ds, val_examples, args.batch_size, args.precision)
    test, prediction = evaluate(model, ds, test_examples, args.batch_size, args.precision)
    entry_video = test_examples[0][:, None].expand_as(prediction)  # (V, 17) the video of each label entry
    interval = metrics.test_interval(prediction, test_examples[-1], entry_video, "f1")  # the test split's 95%
    baseline = {
        "val": metrics.all_negative_baseline(val_examples[-1]),
        "test": metrics.all_negative_baseline(test_examples[-1]),
    }
    paper = metrics.PAPER[(SCRIPT, args.backbone, args.weighted)]
    metrics.print_row(
        f"Table 3 (visual network), {backbones.BACKBONES[args.backbone]}, "
        f"{'weighted' if args.weighted else 'unweighted'}, {ds.source} data",
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
        "weighted": args.weighted,
        "data": ds.describe(),
        "source": ds.source,
        "val": val,
        "test": test,
        "test_interval": interval,
        "curves": curves,
        "paper": paper,
        "baseline": baseline,
        "peak_memory_mb": metrics.peak_memory_mb(device),
        "pos_weight": pos_weight.tolist() if args.weighted else None,
    }
    checkpoint = {**run, "image_tower": model.state_dict()}
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
