"""The whole study in one command: the paper's ten training runs and the retrieval, for each seed.

    python study/run.py --seeds 0 1 2          # 3 x (10 training runs + retrieve), then the summary
    python study/run.py --seeds 0 --epochs 2   # a quick look that everything runs

Each run is the script run as a user runs it (`python tt_agg.py --backbone resnet --seed 1 ...`), one after
the other, so that its output is what a student would see; its folder is OUT/<script>-<backbone>
[-weighted]-seed<k>/, so that seeds never overwrite each other. The wall time of every run is printed as it
ends and saved with the rest in OUT/study_times.json; at the end `python metrics.py OUT` prints every table
as mean ± std over the seeds, with the paper's claims checked as paired differences.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # `python study/run.py` puts study/ first on the path, not the project

import data  # noqa: E402  (after the path: data.run_name names the run folders)

RUNS = [
    (script, backbone, flags)
    for backbone in ["resnet", "vgg"]
    for script, flags in [
        ("sound_only", []),
        ("visual_only", []),
        ("visual_only", ["--weighted"]),
        ("fc_agg", []),
        ("tt_agg", []),
    ]
]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one study per seed")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of every run (paper: 30)")
    parser.add_argument("--data", default=None, help="a dataset file (default: the toy dataset)")
    parser.add_argument(
        "--device", choices=["auto", "cuda", "cpu"], default="auto", help="passed to every run"
    )
    parser.add_argument("--out", default="runs", help="where the runs and study_times.json go")
    parser.add_argument("--k", type=int, default=50, help="retrieve.py --k")
    args, extra = parser.parse_known_args(argv)  # anything else (e.g. --precision fp32) goes to every script
    if args.epochs < 1 or any(s < 0 for s in args.seeds) or len(set(args.seeds)) < len(args.seeds):
        parser.exit(2, "error: --epochs must be at least 1 and --seeds distinct and not negative\n")
    common = (
        ["--epochs", str(args.epochs), "--device", args.device, "--out", args.out]
        + (["--data", args.data] if args.data else [])
        + extra
    )
    times, start = [], time.time()
    for seed in args.seeds:
        commands = [
            [f"{script}.py", "--backbone", backbone, *flags, "--seed", str(seed), *common]
            for script, backbone, flags in RUNS
        ]
        commands.append(
            [
                "retrieve.py",
                "--k",
                str(args.k),
                "--run",
                os.path.join(args.out, data.run_name("tt_agg", "resnet", seed=seed)),
                "--seed",
                str(seed),
                "--device",
                args.device,
                "--out",
                args.out,
            ]
        )
        for command in commands:
            print(f"\n=== seed {seed}: python {' '.join(command)}", flush=True)
            tick = time.time()
            result = subprocess.run([sys.executable, os.path.join(ROOT, command[0]), *command[1:]])
            took = time.time() - tick
            times.append(
                {
                    "seed": seed,
                    "command": "python " + " ".join(command),
                    "wall_s": round(took, 1),
                    "returncode": result.returncode,
                }
            )
            print(f"=== {took:.0f} s (study so far {time.time() - start:.0f} s)", flush=True)
            if result.returncode != 0:
                parser.exit(
                    result.returncode,
                    f"error: `python {' '.join(command)}` failed (exit code "
                    f"{result.returncode}): the study stops here\n",
                )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "study_times.json"), "w") as f:
        json.dump({"seeds": args.seeds, "total_s": round(time.time() - start, 1), "runs": times}, f, indent=1)
    print(f"\nthe study took {time.time() - start:.0f} s; summary:", flush=True)
    sys.exit(subprocess.run([sys.executable, os.path.join(ROOT, "metrics.py"), args.out]).returncode)


if __name__ == "__main__":
    main()
