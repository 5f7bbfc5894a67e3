"""Is training limited by the networks' own arithmetic? The project's one benchmark (not part of the tests).

    python benchmarks/throughput.py                       # every experiment, both backbones, the toy data
    python benchmarks/throughput.py --data data/toy-v977-s224-seed0.pt --device cuda   # paper scale, GPU

For each experiment and backbone it measures two rates:
- the script: the experiment run as a user runs it (`python tt_agg.py --epochs 4 ...`), samples per second of
  its training epochs as recorded in its metrics.json, the median over all but the first (which carries
  one-off warm-up costs; visual_only's epoch is a single batch, so one epoch alone is a noisy clock);
- the model-only step: forward, backward and optimizer step of the script's own model (imported from the
  script, so a changed model is what is measured), loss and batch size, on one batch already on the device,
  repeated -- the most the script could reach, whatever its data path.
Their ratio says how much the data handling around the towers costs (1.0: nothing). Goal: >= 0.9.

The arithmetic: GFLOP per sample of one forward and backward pass, counted by torch's FlopCounterMode (the
convolutions' and matrix products' multiply-adds, two FLOPs each), so TFLOP/s = model-only rate x GFLOP /
1000; on CUDA, that as a fraction of the card's dense bf16 peak (PEAK_TFLOPS), or "unknown card".

Peak memory: on CUDA the script's `torch.cuda.max_memory_allocated` (recorded in metrics.json), on CPU the
script process's peak resident memory. `--json FILE` keeps the table with its settings (which
benchmarks/gpu_study.sh reads back).
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)  # the project's modules, wherever this is run from

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    import backbones
    import data
    import fc_agg
    import tt_agg
    from safe_files import ownership
    from study.runs import SCRIPTS  # the four experiment scripts, defined once
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

SAMPLE = {"sound_only": "clip", "visual_only": "frame", "fc_agg": "clip", "tt_agg": "pair"}

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from NVIDIA's data sheets, which give them "with
# sparsity", twice the dense figure. Matched against torch.cuda.get_device_name(), most specific name first.
PEAK_TFLOPS = {
    "H100 PCIe": 756,  # H100 data sheet: BF16 Tensor Core 1,513 TFLOPS with sparsity (PCIe)
    "H100 NVL": 835,  # H100 data sheet: 1,671 with sparsity (NVL)
    "H100": 989,  # H100 data sheet: 1,979 with sparsity (SXM, "NVIDIA H100 80GB HBM3")
    "H200 NVL": 835,  # H200 data sheet: 1,671 with sparsity (NVL)
    "H200": 989,  # H200 data sheet: 1,979 with sparsity (SXM): the H100's compute with more memory
    "A100": 312,  # A100 data sheet: BF16 Tensor Core 312 TFLOPS (624 with sparsity), SXM and PCIe
    "L4": 121,  # L4 data sheet: 242 with sparsity
    "T4": 65,  # T4 data sheet: 65 TFLOPS mixed precision FP16 (Turing has no bf16 tensor cores)
    "RTX 4090": 165,  # Ada architecture white paper: 165.2 with FP32 accumulate (330.4 with sparsity)
}


def peak_tflops(device_name):
    """The dense bf16 peak of the card named `device_name` (PEAK_TFLOPS), None for a card not in the table."""
    words = " " + device_name.replace("-", " ") + " "  # "NVIDIA A100-SXM4-80GB" -> " NVIDIA A100 SXM4 80GB "
    for card, peak in PEAK_TFLOPS.items():
        if f" {card} " in words:
            return peak
    return None


def model_and_loss(experiment, backbone, batch_size, size, device):
    """The experiment's model, as its script builds it; `forward()`, its output for one fixed batch on
    `device`; and `loss(output)`, the script's loss function of that output, in fp32."""
    image = torch.randn(batch_size, 3, size, size, device=device)  # (B, 3, S, S)
    sound = torch.randn(batch_size, 1, size, size, device=device)  # (B, 1, S, S)
    material = torch.randint(0, data.NUM_MATERIALS, (batch_size,), device=device)  # (B,)
    if experiment == "sound_only":
        model = backbones.tower(backbone, 1, data.NUM_MATERIALS)  # as sound_only.py: spectrogram -> 17 logits

        def forward():
            return model(sound)  # (B, 17)

        def loss(logits):
            return F.cross_entropy(logits.float(), material)

    elif experiment == "visual_only":
        model = backbones.tower(backbone, 3, data.NUM_MATERIALS)  # as visual_only.py: frame -> 17 logits
        labels = (torch.rand(batch_size, data.NUM_MATERIALS, device=device) < 0.1).float()  # (B, 17)

        def forward():
            return model(image)  # (B, 17)

        def loss(logits):
            return F.binary_cross_entropy_with_logits(logits.float(), labels)

    elif experiment == "fc_agg":
        model = fc_agg.FCAgg(backbone)

        def forward():
            return model(image, sound)  # (B, 17)

        def loss(logits):
            return F.cross_entropy(logits.float(), material)

    else:
        model = tt_agg.TwoTower(backbone)
        label = (torch.rand(batch_size, device=device) < 0.5).float()  # (B,) half positives

        def forward():
            return model(image, sound)  # (B,) probabilities

        def loss(probability):
            return F.binary_cross_entropy(probability.float(), label)

    return model, forward, loss


def gflop_per_sample(experiment, backbone, size):
    """GFLOP of one forward and backward pass per sample, counted on the meta device (shapes, no work)."""
    with torch.device("meta"):
        model, forward, loss = model_and_loss(experiment, backbone, 2, size, torch.device("meta"))
        with FlopCounterMode(display=False) as counter:
            loss(forward()).backward()
    return counter.get_total_flops() / 2 / 1e9


def model_only_step(experiment, backbone, batch_size, size, device, steps, precision, compile):
    """(samples per second, seconds of the warm-up steps) of forward + backward + SGD step on one fixed batch
    already on `device`. With `compile` the model goes through torch.compile, whose work the warm-up holds."""
    torch.manual_seed(0)
    model, forward, loss = model_and_loss(experiment, backbone, batch_size, size, device)
    # channels-last with bf16, as the scripts do
    model.to(device, memory_format=backbones.memory_format(precision))
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if compile:
        model.compile()  # in place: `forward` calls the compiled model

    def step():
        with backbones.autocast(device, precision):  # the towers' forward pass, as in the scripts
            output = forward()
        value = loss(output)  # in fp32, outside autocast (which refuses binary cross-entropy), as the scripts
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    def timed(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.time()
        for _ in range(n):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.time() - start

    warm_up = timed(3)  # allocator, cudnn autotuning, oneDNN primitive caches, compilation
    return batch_size * steps / timed(steps), warm_up


def script_rate(experiment, backbone, args, out):
    """Run the experiment script for `args.epochs` epochs: (the median samples/s of its epochs after the
    first, peak memory in MiB, its batch size)."""
    command = [
        f"{experiment}.py",
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
    result = subprocess.run([sys.executable, *command], cwd=HERE, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        sys.exit(f"error: `python {' '.join(command)}` failed (exit code {result.returncode}): {last}")
    rss_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024  # KiB -> MiB
    with open(os.path.join(out, data.run_name(experiment, backbone), "metrics.json")) as f:
        m = json.load(f)
    peak = m.get("peak_memory_mb") or rss_mb
    rates = sorted(c["samples_per_s"] for c in m["curves"][1:])
    return rates[len(rates) // 2], peak, m["args"]["batch_size"]


def add_script_flags(parser, names):
    """Add the flags `names` as the scripts define them (tt_agg.py's parser: choices, default and help), so
    that what the benchmark passes on to every script means what it means there."""
    script_parser, _ = tt_agg.parse_args([])
    for action in script_parser._actions:  # argparse keeps a parser's flags here
        if action.option_strings[:1] in [[name] for name in names]:
            parser.add_argument(
                *action.option_strings, default=action.default, choices=action.choices, help=action.help
            )


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_script_flags(parser, ["--data", "--device", "--precision"])
    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="epochs per script run (all but the first are timed; at least 2)",
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps of the model-only loop")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model-only step through torch.compile (a trial: the scripts do not compile); its "
        "warm-up column then holds the compile time, to weigh against the time it saves",
    )
    parser.add_argument("--experiments", nargs="+", choices=SCRIPTS, default=SCRIPTS)
    parser.add_argument(
        "--backbones", nargs="+", choices=sorted(backbones.BACKBONES), default=sorted(backbones.BACKBONES)
    )
    parser.add_argument(
        "--json", default=None, help="also write the table and its settings to this JSON file"
    )
    args = parser.parse_args()
    if args.epochs < 2 or args.steps < 1:
        parser.exit(2, "error: --epochs must be at least 2 (the first is not timed) and --steps at least 1\n")
    return parser, args


def check_inputs(parser, args):
    """Before any work: the device, the dataset (the default toy is built if need be, as the scripts do) and
    the JSON file's place, each refused in one line. Returns (device, dataset path, dataset dict)."""
    try:
        device = data.pick_device(args.device)
        if args.json:
            ownership.check_out(args.json)
        path = args.data or data.default_toy()  # the default toy is built on first use, as by every script
        d = data.read_dataset(path)
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    return device, path, d


def measure(args, device, d, card_peak):
    """Print the table, a row per experiment and backbone as it is measured; returns the rows. `card_peak`:
    the card's dense bf16 peak in TFLOP/s, or None."""
    size, train_videos = d["frames"].shape[-1], int((d["split"] == 0).sum())
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for experiment in args.experiments:
            for backbone in args.backbones:
                rate, peak_mib, batch_size = script_rate(experiment, backbone, args, out)
                # the script's batches are never larger than its epoch: a frame per video for visual_only,
                # ten clips per video for sound_only and fc_agg, twenty pairs per video for tt_agg
                per_epoch = train_videos * {"visual_only": 1, "tt_agg": 20}.get(experiment, 10)
                batch_size = min(batch_size, per_epoch)
                model, warm_up = model_only_step(
                    experiment, backbone, batch_size, size, device, args.steps, args.precision, args.compile
                )
                gflop = gflop_per_sample(experiment, backbone, size)
                row = {
                    "experiment": experiment,
                    "backbone": backbone,
                    "sample": SAMPLE[experiment],
                    "batch_size": batch_size,
                    "script_per_s": rate,
                    "model_per_s": model,
                    "ratio": rate / model,
                    "gflop_per_sample": gflop,
                    "model_tflops": model * gflop / 1000,
                    "fraction_of_peak": None,
                    "warm_up_s": warm_up,
                    "peak_mib": peak_mib,
                }
                if card_peak:
                    row["fraction_of_peak"] = row["model_tflops"] / card_peak
                print(format_row(row, device), flush=True)
                rows.append(row)
    return rows


def format_row(row, device):
    """One line of the table; the fraction of the peak on CUDA only ("unknown card" without a known peak)."""
    line = (
        f"{row['experiment']:<12} {row['backbone']:<9} {device.type:<7} {row['script_per_s']:>9.1f} "
        f"{row['model_per_s']:>9.1f} {row['ratio']:>6.2f} {row['gflop_per_sample']:>9.2f} "
        f"{row['model_tflops']:>8.2f} {row['warm_up_s']:>9.1f} {row['peak_mib']:>9.0f}"
    )
    if device.type != "cuda":
        return line
    if row["fraction_of_peak"] is None:
        return line + "  unknown card"
    return line + f" {row['fraction_of_peak']:>8.1%}"


HEADER = (
    f"{'experiment':<12} {'backbone':<9} {'device':<7} {'script/s':>9} {'model/s':>9} {'ratio':>6} "
    f"{'GFLOP/smp':>9} {'TFLOP/s':>8} {'warm-up s':>9} {'peak MiB':>9}"
)


def main():
    parser, args = parse_args()
    device, path, d = check_inputs(parser, args)
    args.precision = backbones.precision(args.precision, device)
    card_peak = None
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        card_peak = peak_tflops(name)
        known = "unknown card: no peak to compare with"
        if card_peak:
            known = f"dense bf16 peak {card_peak} TFLOP/s"
        print(f"device: {name} ({known})")
    else:
        print(f"device: CPU, {torch.get_num_threads()} threads")
    compiled = " (model-only step through torch.compile)" if args.compile else ""
    print(f"{args.precision}{compiled}; data: {path}; torch {torch.__version__}")
    print(HEADER + (f" {'of peak':>8}" if device.type == "cuda" else ""))
    try:
        rows = measure(args, device, d, card_peak)
    except KeyboardInterrupt:  # the script runs' folders were temporary ones, and the JSON is not begun
        print("interrupted: nothing written", file=sys.stderr)
        sys.exit(130)
    if args.json:
        result = {
            "written_by": "matsound benchmarks/throughput.py",
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "peak_tflops": card_peak,
            "precision": args.precision,
            "compile": args.compile,
            "data": path,
            "data_fingerprint": data.fingerprint(d),
            "epochs": args.epochs,
            "steps": args.steps,
            "torch": torch.__version__,
            "rows": rows,
        }
        ownership.write_json(result, args.json)
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
