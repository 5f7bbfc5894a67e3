"""The teacher's key, measured: each exercise's reference patch against the unchanged code, over seeds.

    python teaching/measure.py                      # all exercises, seeds 0 1 2, the default toy (70 videos)
    python teaching/measure.py 04-random-negatives --seeds 0 1 2
    python teaching/measure.py --list               # the exercises, their patch, script and what is compared

For every exercise it copies the project's files into OUT/copies/<exercise>/, applies the exercise's patch
there with `git apply` (the project itself is never changed), and runs the exercise's script once per seed;
the unchanged code runs in OUT/copies/baseline/ with the same seeds. Each copy trains on its own toy file:
copied from the baseline's, or built anew where the patch changes the toy generator. At the end it prints,
for every exercise, each number it watches as baseline and patched mean ± std over the seeds with the
paired difference (patched - baseline, mean ± std over seeds), and writes the same to OUT/key.md and
OUT/key.json. teaching/KEY.md was pasted from such a run (its header says where and when).
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from study.claims import interval  # noqa: E402  (the study's 95% t-interval of a mean over seeds)

PATCHES = os.path.join(HERE, "patches")

# exercise -> (script and its flags, the numbers compared: (label, where in metrics.json))
SOUND = ["sound_only.py", "--backbone", "resnet"]
TT_RESNET = ["tt_agg.py", "--backbone", "resnet"]
EXERCISES = {
    "01-half-training-videos": (SOUND, [("val accuracy", "val.accuracy"), ("test accuracy", "test.accuracy")]),
    "02-one-sound-per-image": (TT_RESNET, [("test accuracy", "test.accuracy"), ("test F1", "test.f1")]),
    "03-single-material-frames": (TT_RESNET, [("test accuracy", "test.accuracy"), ("test F1", "test.f1")]),
    "04-random-negatives": (TT_RESNET, [("test accuracy", "test.accuracy"), ("test F1", "test.f1")]),
    "05-learned-temperature": (TT_RESNET, [("test accuracy", "test.accuracy"), ("test F1", "test.f1")]),
    "06-class-weights": (
        SOUND,
        [
            ("test accuracy", "test.accuracy"),
            ("mean recall over materials", "macro_recall"),
            ("dirt recall", "recall.dirt"),
        ],
    ),
    "07-plain-sgd": (TT_RESNET, [("test accuracy", "test.accuracy"), ("test F1", "test.f1")]),
    "08-mel-bands": (SOUND, [("val accuracy", "val.accuracy"), ("test accuracy", "test.accuracy")]),
}
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
]  # Table 1 (as data.MATERIALS)


def number(m, where):
    """One watched number of a run's metrics.json."""
    if where == "gap":
        return m["val"]["accuracy"] - m["test"]["accuracy"]
    recalls = {
        name: row[i] / sum(row)
        for i, (name, row) in enumerate(zip(MATERIALS, m.get("test_confusion", [])))
        if sum(row)
    }
    if where == "macro_recall":
        return statistics.mean(recalls.values())
    if where.startswith("recall."):
        return recalls.get(where.split(".")[1], float("nan"))
    split, key = where.split(".")
    return m[split][key]


def copy_project(dest):
    """The project's files (not its data, runs or git history) into `dest`."""
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(
            ".git", "data", "runs", "runs-*", "__pycache__", ".pytest_cache", "teaching-runs", ".tmp-*"
        ),
    )


def prepare(name, out, videos, baseline_toy):
    """OUT/copies/<name>/ with the patch applied and its toy file in data/; returns (folder, toy path)."""
    folder = os.path.join(out, "copies", name)
    shutil.rmtree(folder, ignore_errors=True)
    copy_project(folder)
    patch = os.path.join(PATCHES, f"{name}.patch")
    if name != "baseline":  # `git apply`, or `patch` where git is not installed
        apply = ["git", "apply", patch] if shutil.which("git") else ["patch", "-p1", "--quiet", "-i", patch]
        subprocess.run(apply, cwd=folder, check=True)
    toy = os.path.join("data", f"toy-v{videos}-s32-seed0.pt")
    if baseline_toy and "dataset_sources/" not in open(patch).read():
        os.makedirs(os.path.join(folder, "data"))
        shutil.copy(baseline_toy, os.path.join(folder, toy))
    else:  # the baseline, or a patch that changes the toy generator: build this copy's own toy
        subprocess.run(
            [sys.executable, "data.py", "toy", "--videos", str(videos)],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return folder, toy


def run(folder, command, seed, toy, epochs, device, log):
    """One training run in `folder`; returns its metrics.json as a dict."""
    args = [
        sys.executable,
        *command,
        "--seed",
        str(seed),
        "--epochs",
        str(epochs),
        "--data",
        toy,
        "--device",
        device,
        "--out",
        "runs",
    ]
    tick = time.time()
    with open(log, "w") as f:
        if subprocess.run(args, cwd=folder, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise RuntimeError(
                f"`python {' '.join(command)} --seed {seed}` failed in {folder}: its output is in {log}"
            )
    backbone = command[command.index("--backbone") + 1]
    with open(os.path.join(folder, "runs", f"{command[0][:-3]}-{backbone}-seed{seed}", "metrics.json")) as f:
        m = json.load(f)
    print(
        f"{os.path.basename(folder)}: python {' '.join(command)} --seed {seed}: test accuracy "
        f"{m['test']['accuracy']:.4f} ({time.time() - tick:.0f} s)",
        flush=True,
    )
    return m


def spread(values, sign=""):
    """'mean ± std' of the seeds' values ('+' shown with sign="+"); 'n/a' where a value is undefined (e.g. a
    material with no clip in the test split)."""
    if any(v != v for v in values):
        return "n/a"
    return f"{statistics.mean(values):{sign}.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


def verdict(diff):
    """The paired difference's 95% interval over seeds, and whether it excludes 0: 'up', 'down' or 'within noise'."""
    if any(d != d for d in diff) or len(diff) < 2:
        return "n/a | n/a"
    mean, half, _ = interval(diff)
    word = (
        "up"
        if mean - half > 0
        else "down"
        if mean + half < 0
        else "no change"
        if half == mean == 0
        else "within noise"
    )
    return f"[{mean - half:+.3f}, {mean + half:+.3f}] | {word}"


def table(key):
    """The key as markdown rows: for each exercise and number, both arms and their paired difference."""
    lines = [
        "| exercise | command | number | unchanged code | patched | patched - unchanged | 95% interval | "
        "verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, numbers in key.items():
        for label, arms in numbers.items():
            diff = [p - b for p, b in zip(arms["patched"], arms["baseline"])]
            lines.append(
                f"| {name} | `python {' '.join(EXERCISES[name][0])}` | {label} | {spread(arms['baseline'])} | "
                f"{spread(arms['patched'])} | {spread(diff, '+')} | {verdict(diff)} |"
            )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "exercises", nargs="*", default=list(EXERCISES), help="which exercises (default: all)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of every run (paper: 30)")
    parser.add_argument("--videos", type=int, default=70, help="toy size (70: the default toy)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (on a GPU: 2-4)")
    parser.add_argument("--out", default="teaching-runs", help="where the copies, runs and the key go")
    parser.add_argument("--list", action="store_true", help="list the exercises and stop")
    args = parser.parse_args(argv)
    unknown = [e for e in args.exercises if e not in EXERCISES]
    if unknown:
        parser.exit(2, f"error: unknown exercise {unknown[0]!r}: choose from {', '.join(EXERCISES)}\n")
    if args.list:
        for name, (command, watched) in EXERCISES.items():
            print(f"{name:28s} python {' '.join(command)}  | {', '.join(label for label, _ in watched)}")
        return
    if args.epochs < 1 or args.jobs < 1 or args.videos < 10 or len(set(args.seeds)) < len(args.seeds):
        parser.exit(2, "error: --epochs, --jobs at least 1, --videos at least 10, --seeds distinct\n")
    start = time.time()
    base_folder, toy = prepare("baseline", args.out, args.videos, None)
    folders = {"baseline": base_folder}
    for name in args.exercises:
        folders[name] = prepare(name, args.out, args.videos, os.path.join(base_folder, toy))[0]
    jobs = {}  # (name, seed) -> future
    baselines = {tuple(EXERCISES[name][0]) for name in args.exercises}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for seed in args.seeds:
            for command in sorted(baselines):
                jobs[(command, seed)] = pool.submit(
                    run,
                    base_folder,
                    list(command),
                    seed,
                    toy,
                    args.epochs,
                    args.device,
                    os.path.join(base_folder, f"log-{command[0]}-{command[2]}-{seed}.txt"),
                )
            for name in args.exercises:
                jobs[(name, seed)] = pool.submit(
                    run,
                    folders[name],
                    EXERCISES[name][0],
                    seed,
                    toy,
                    args.epochs,
                    args.device,
                    os.path.join(folders[name], f"log-{seed}.txt"),
                )
        try:
            results = {key: future.result() for key, future in jobs.items()}
        except RuntimeError as e:  # one line; the runs still going finish first
            parser.exit(1, f"error: {e}\n")
    took = time.time() - start
    key = {
        name: {
            label: {
                "baseline": [number(results[(tuple(EXERCISES[name][0]), s)], where) for s in args.seeds],
                "patched": [number(results[(name, s)], where) for s in args.seeds],
            }
            for label, where in EXERCISES[name][1]
        }
        for name in args.exercises
    }
    lines = table(key)
    header = (
        f"seeds {' '.join(map(str, args.seeds))}, {args.epochs} epochs, toy of {args.videos} videos, "
        f"device {args.device}; mean ± std over seeds; {took:.0f} s in all"
    )
    print("\n".join([header, ""] + lines))
    with open(os.path.join(args.out, "key.md"), "w") as f:
        f.write("\n".join([header, ""] + lines) + "\n")
    with open(os.path.join(args.out, "key.json"), "w") as f:
        json.dump(
            {
                "seeds": args.seeds,
                "epochs": args.epochs,
                "videos": args.videos,
                "device": args.device,
                "seconds": round(took),
                "key": key,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
