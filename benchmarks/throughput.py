"""Is training limited by the networks' own arithmetic? The project's one benchmark (not part of the tests).

    python benchmarks/throughput.py                       # every experiment, both backbones, the toy data
    python benchmarks/throughput.py --data data/toy-v977-s224-seed0.pt --device cuda   # paper scale, GPU

For each experiment and backbone it measures two rates:
- the script: the experiment run as a user runs it (`python tt_agg.py --epochs 4 ...`), samples per second of
  its training epochs as recorded in its metrics.json, the median over all but the first (which carries
  one-off warm-up costs; visual_only's epoch is a single batch, so one epoch alone is a noisy clock);
- the model-only step: forward, backward and optimizer step of the same towers, loss and batch size, on one
  batch that is already on the device, repeated -- the most the script could reach, whatever its data path.
Their ratio says how much the data handling around the towers costs (1.0: nothing). Goal: >= 0.9.

Peak memory: on CUDA the script's `torch.cuda.max_memory_allocated` (recorded in metrics.json), on CPU the
script process's peak resident memory.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
import backbones  # noqa: E402
import data  # noqa: E402

EXPERIMENTS = ["sound_only", "visual_only", "fc_agg", "tt_agg"]


def model_only_step(experiment, backbone, batch_size, size, device, steps, precision):
    """Samples per second of forward + backward + SGD step on one fixed batch already on `device`."""
    torch.manual_seed(0)
    image = torch.randn(batch_size, 3, size, size, device=device)  # (B, 3, S, S)
    sound = torch.randn(batch_size, 1, size, size, device=device)  # (B, 1, S, S)
    fmt = backbones.memory_format(precision)  # channels-last with bf16, as the scripts do
    if experiment in ("sound_only", "visual_only"):
        channels, x = (1, sound) if experiment == "sound_only" else (3, image)
        net = backbones.tower(backbone, channels, data.NUM_MATERIALS).to(device, memory_format=fmt)
        modules, forward = [net], lambda: net(x)
        if experiment == "sound_only":
            target = torch.randint(0, data.NUM_MATERIALS, (batch_size,), device=device)
            criterion = lambda out: F.cross_entropy(out, target)
        else:
            target = (torch.rand(batch_size, data.NUM_MATERIALS, device=device) < 0.1).float()
            criterion = lambda out: F.binary_cross_entropy_with_logits(out, target)
    else:
        image_tower = backbones.tower(backbone, 3, backbones.EMBEDDING_DIM).to(device, memory_format=fmt)
        sound_tower = backbones.tower(backbone, 1, backbones.EMBEDDING_DIM).to(device, memory_format=fmt)
        modules = [image_tower, sound_tower]
        if experiment == "fc_agg":
            classifier = torch.nn.Linear(2 * backbones.EMBEDDING_DIM, data.NUM_MATERIALS).to(device)
            modules.append(classifier)
            target = torch.randint(0, data.NUM_MATERIALS, (batch_size,), device=device)
            forward = lambda: classifier(torch.cat([image_tower(image), sound_tower(sound)], 1))
            criterion = lambda out: F.cross_entropy(out, target)
        else:
            target = (torch.rand(batch_size, device=device) < 0.5).float()
            forward = lambda: (F.cosine_similarity(image_tower(image), sound_tower(sound)) + 1) / 2
            criterion = lambda out: F.binary_cross_entropy(out, target)
    optimizer = torch.optim.SGD([p for m in modules for p in m.parameters()], lr=0.01, momentum=0.9)

    def step():
        with backbones.autocast(device, precision):  # the towers' forward pass, as in the scripts
            out = forward()
        loss = criterion(out.float())  # the loss in fp32, outside autocast
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: allocator, cudnn autotuning, oneDNN primitive caches
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.time()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch_size * steps / (time.time() - start)


def script_rate(experiment, backbone, args, out):
    """Run the experiment script for `args.epochs` epochs; the median samples/s of its epochs after the first,
    peak memory in MiB."""
    command = [
        sys.executable,
        os.path.join(HERE, f"{experiment}.py"),
        "--backbone",
        backbone,
        "--epochs",
        str(args.epochs),
        "--device",
        args.device,
        "--precision",
        args.precision,
        "--out",
        out,
    ]
    if args.data:
        command += ["--data", args.data]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(command, cwd=HERE, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    rss_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024  # KiB -> MiB
    m = json.load(open(os.path.join(out, f"{experiment}-{backbone}-seed0", "metrics.json")))
    peak = m.get("peak_memory_mb") or rss_mb
    rates = sorted(c["samples_per_s"] for c in m["curves"][1:])
    return rates[len(rates) // 2], peak, m["args"]["batch_size"]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", default=None, help="dataset file (default: the toy dataset)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="epochs per script run (all but the first are timed; at least 2)",
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps of the model-only loop")
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="as the scripts' flag: auto is bf16 and channels-last on CUDA, fp32 on the CPU",
    )
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=EXPERIMENTS)
    parser.add_argument(
        "--backbones", nargs="+", choices=sorted(backbones.BACKBONES), default=sorted(backbones.BACKBONES)
    )
    args = parser.parse_args()
    if args.epochs < 2 or args.steps < 1:
        parser.exit(2, "error: --epochs must be at least 2 (the first is not timed) and --steps at least 1\n")
    try:
        device = data.pick_device(args.device)
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    args.precision = backbones.precision(args.precision, device)
    print(
        f"device: {name}; {args.precision}; data: {args.data or 'the toy default'}; torch {torch.__version__}"
    )
    print(
        f"{'experiment':<12} {'backbone':<9} {'device':<7} {'script/s':>9} {'model/s':>9} {'ratio':>6} "
        f"{'peak MiB':>9}"
    )
    with tempfile.TemporaryDirectory() as out:
        for experiment in args.experiments:
            for backbone in args.backbones:
                rate, peak, batch_size = script_rate(
                    experiment, backbone, args, out
                )  # builds the toy if need be
                d = data.read_dataset(args.data or data.toy_path(**data.TOY_DEFAULTS))
                size, train_videos = d["frames"].shape[-1], int((d["split"] == 0).sum())
                # the script's batches are never larger than its epoch: a frame per video for visual_only,
                # ten clips per video for sound_only and fc_agg, twenty pairs per video for tt_agg
                per_epoch = train_videos * {"visual_only": 1, "tt_agg": 20}.get(experiment, 10)
                batch_size = min(batch_size, per_epoch)
                model = model_only_step(
                    experiment, backbone, batch_size, size, device, args.steps, args.precision
                )
                print(
                    f"{experiment:<12} {backbone:<9} {device.type:<7} {rate:>9.1f} {model:>9.1f} "
                    f"{rate / model:>6.2f} {peak:>9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
