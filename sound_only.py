"""Sound network: spectrogram -> 1 of 17 materials (paper 3.3.1, Table 2, Figure 5 top row).

    python sound_only.py --backbone resnet

The baseline for the multimodal FC_AGG model (fc_agg.py): the same task, the material of one hit's sound,
from the sound alone. Each clip's square log-mel spectrogram (data.spectrogram) goes through one tower
with 17 outputs, trained with cross-entropy.
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F

import backbones
import data
import metrics

SCRIPT = "sound_only"
METRICS = ["accuracy"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backbone", choices=sorted(backbones.BACKBONES), default="resnet",
                        help="network architecture (paper 3.2)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (paper: 30)")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (paper: 0.01)")
    parser.add_argument("--momentum", type=float, default=0.9,
                        help="SGD momentum; the paper does not say: 0.9, the usual value. No weight decay, "
                             "as the paper names no regularisation")
    parser.add_argument("--batch-size", type=int, default=64, help="clips per step (the paper does not say)")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and batch order")
    parser.add_argument("--data", default=None,
                        help="a dataset file made by data.py (default: the toy dataset, built on first use)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                        help="auto: CUDA when a GPU is visible, else CPU")
    parser.add_argument("--deterministic", action="store_true",
                        help="on CUDA, trade speed for repeatable runs (no cudnn autotuning, deterministic "
                             "kernels); CPU runs repeat to the last digit anyway")
    parser.add_argument("--out", default="runs", help="the run is saved in OUT/sound_only-BACKBONE/")
    args = parser.parse_args()
    for flag, value in [("--epochs", args.epochs), ("--batch-size", args.batch_size)]:
        if value < 1:
            parser.exit(2, f"error: {flag} must be at least 1, got {value}\n")
    if not args.lr > 0:
        parser.exit(2, f"error: --lr must be positive, got {args.lr}\n")
    return parser, args


def make_clips(ds, videos):
    """Every clip of `videos`: (video, clip, material), each (len(videos) * 10,), on the device."""
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)                        # (M,)
    clip_index = torch.arange(n, device=videos.device).repeat(len(videos))
    return clip_video, clip_index, ds.clip_materials[clip_video, clip_index]


def batch(ds, clips, idx):
    """Spectrograms and materials of the clips at positions `idx`: index slices of device tensors."""
    clip_video, clip_index, material = clips
    return ds.spectrograms[clip_video[idx], clip_index[idx]], material[idx]  # (B, 1, S, S), (B,)


def train_epoch(model, optimizer, ds, clips, batch_size, epoch):
    model.train()
    n = len(clips[-1])
    order = torch.randperm(n, device=clips[-1].device)
    losses = []
    for start in range(0, n, batch_size):
        sound, material = batch(ds, clips, order[start:start + batch_size])
        logits = model(sound)  # (B, 17)
        loss = F.cross_entropy(logits, material)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # kept on the device: no synchronisation per step
    losses = torch.stack(losses)
    if not torch.isfinite(losses).all():
        step = torch.nonzero(~torch.isfinite(losses))[0].item() + 1
        raise FloatingPointError(f"the training loss became {losses[step - 1].item()} at epoch {epoch}, step "
                                 f"{step}: lower --lr, or check the data")
    return losses.mean().item()


@torch.no_grad()
def evaluate(model, ds, clips, batch_size):
    """Accuracy of `model` on the clips, and the predicted material of each."""
    model.eval()
    positions = torch.arange(len(clips[-1]), device=clips[-1].device).split(batch_size)
    logits = torch.cat([model(batch(ds, clips, idx)[0]) for idx in positions])
    prediction = logits.argmax(1)
    return {"accuracy": metrics.accuracy(prediction, clips[-1])}, prediction


def main():
    parser, args = parse_args()
    try:
        device = data.pick_device(args.device, args.deterministic)
        torch.manual_seed(args.seed)
        ds = data.load(args.data, device)
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    print(f"{SCRIPT}: {ds.describe()}; device {device}{' (deterministic)' * args.deterministic}; "
          f"{backbones.BACKBONES[args.backbone]}; {args.epochs} epochs", flush=True)

    model = backbones.tower(args.backbone, 1, data.NUM_MATERIALS).to(device)  # spectrogram -> 17 logits
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    train_clips, val_clips, test_clips = (make_clips(ds, ds.videos(s)) for s in ["train", "val", "test"])
    curves, start = [], time.time()
    for epoch in range(1, args.epochs + 1):
        tick = time.time()
        try:
            train_loss = train_epoch(model, optimizer, ds, train_clips, args.batch_size, epoch)
        except FloatingPointError as e:
            parser.exit(2, f"error: {e}\n")
        samples_per_s = len(train_clips[-1]) / (time.time() - tick)
        val, _ = evaluate(model, ds, val_clips, args.batch_size)
        curves.append({"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()},
                       "samples_per_s": samples_per_s, "elapsed_s": time.time() - start})
        print(f"epoch {epoch:2d}/{args.epochs} | train loss {train_loss:.4f} | val " +
              " ".join(f"{k} {v:.4f}" for k, v in val.items()) +
              f" | {samples_per_s:.0f} clips/s | {time.time() - start:.0f} s", flush=True)

    val, _ = evaluate(model, ds, val_clips, args.batch_size)
    test, test_prediction = evaluate(model, ds, test_clips, args.batch_size)
    baseline = {s: metrics.majority_baseline(train_clips[-1], clips[-1])
                for s, clips in [("val", val_clips), ("test", test_clips)]}
    paper = metrics.PAPER[(SCRIPT, args.backbone, False)]
    confusion = metrics.confusion_matrix(test_prediction, test_clips[-1], data.NUM_MATERIALS)
    print("test confusion matrix (rows true material, columns predicted; IDs as in Table 1):")
    print("\n".join(metrics.format_confusion(confusion)))
    metrics.print_row(f"Table 2 (sound network), {backbones.BACKBONES[args.backbone]}, {ds.source} data",
                      val, test, paper, baseline, METRICS)

    out = os.path.join(args.out, f"{SCRIPT}-{args.backbone}")
    metrics.write_json({"script": SCRIPT, "backbone": args.backbone, "args": vars(args), "data": ds.describe(),
                        "source": ds.source, "val": val, "test": test, "curves": curves, "paper": paper,
                        "baseline": baseline, "test_confusion": confusion.tolist(),
                        "peak_memory_mb": metrics.peak_memory_mb(device)},
                       os.path.join(out, "metrics.json"))
    data.atomic_save({"script": SCRIPT, "backbone": args.backbone, "args": vars(args),
                      "sound_tower": model.state_dict()}, os.path.join(out, "model.pt"))
    metrics.save_confusion_png(confusion, data.MATERIALS, f"Figure 5: sound only, "
                               f"{backbones.BACKBONES[args.backbone]}, test set, {ds.source} data",
                               os.path.join(out, "confusion.png"))
    print(f"saved {out}/metrics.json, model.pt and confusion.png")


if __name__ == "__main__":
    main()
