"""The teacher's key, measured: each exercise's reference patch against the unchanged code, over seeds.

    python teaching/measure.py                      # all exercises, seeds 0 1 2, the scripts' default toy
    python teaching/measure.py 04-random-negatives --seeds 0 1 2
    python teaching/measure.py --videos 70          # the earlier default toy (36/17/17 videos)
    python teaching/measure.py --list               # the exercises, their patch, script and what is compared

For every exercise it copies the project's files into OUT/copies/<exercise>/, applies the exercise's patch
there with `git apply` (the project itself is never changed), and runs the exercise's script once per seed,
its run folders in OUT/runs/<exercise>/ and its output in OUT/logs/; the unchanged code runs from
OUT/copies/baseline/ with the same seeds. Each copy trains on its own toy file, in its data/: copied from the
baseline's, or built anew where the patch changes the toy generator. At the end it prints, for every exercise,
each number it watches as baseline and patched mean ± std over the seeds with the paired difference
(patched - baseline, seed by seed) and its 95% interval, the arithmetic of teaching/compare.py, and writes the
same to OUT/key.md and OUT/key.json. teaching/KEY.md was pasted from such runs (its header says where and
when).

What it writes carries the project's mark, and it replaces only what carries it: a copy folder by its
manifest, key.json by its "written_by", key.md and the logs by their first line. Anything else in the way is
a one-line refusal before any work; so is an OUT inside the project's sources (other than its ignored output
folders).
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import data
    from safe_files import ownership
    from teaching.compare import Parser, copy_project, number, spread, verdict  # one arithmetic
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

PROGRAM = "teaching/measure.py"
PATCHES = os.path.join(HERE, "patches")
MARK = f"<!-- written by {ownership.SIGNATURE}: {PROGRAM} -->"  # the first line of key.md and of every log
CHILD_ENV = {
    **os.environ,
    "PYTHONDONTWRITEBYTECODE": "1",
}  # no __pycache__ in a copy: only its manifest's files

# exercise -> (script and its flags, the numbers compared: (label, where in metrics.json))
SOUND = ["sound_only.py", "--backbone", "resnet"]
TT_RESNET = ["tt_agg.py", "--backbone", "resnet"]
TT_NUMBERS = [("test accuracy", "test.accuracy"), ("test F1", "test.f1")]
EXERCISES = {
    "01-half-training-videos": (
        SOUND,
        [("val accuracy", "val.accuracy"), ("test accuracy", "test.accuracy")],
    ),
    "02-one-sound-per-image": (TT_RESNET, TT_NUMBERS),
    "03-single-material-frames": (TT_RESNET, TT_NUMBERS),
    "04-random-negatives": (TT_RESNET, TT_NUMBERS),
    "05-learned-temperature": (TT_RESNET, TT_NUMBERS),
    "06-class-weights": (
        SOUND,
        [
            ("test accuracy", "test.accuracy"),
            ("mean recall over materials", "macro_recall"),
            ("dirt recall", "recall.dirt"),
        ],
    ),
    "07-plain-sgd": (TT_RESNET, TT_NUMBERS),
    "08-mel-bands": (SOUND, [("val accuracy", "val.accuracy"), ("test accuracy", "test.accuracy")]),
}


RUNNING = set()  # the training runs going on now (child processes): ended with this program, never orphaned


class Failed(Exception):
    """A step that failed: its message is the one line the user sees (the command and where its output is)."""


def prepare(name, folder, toy_flags, baseline_toy):
    """The copy of the project in `folder` (staged by atomic_folder) with the patch applied and its toy
    file in data/ (made by `python data.py toy` with `toy_flags`); returns the toy's path inside the
    copy."""
    copy_project(ROOT, folder)
    patch = os.path.join(PATCHES, f"{name}.patch")
    if name != "baseline":  # `git apply`, or `patch` where git is not installed
        apply = ["git", "apply", patch] if shutil.which("git") else ["patch", "-p1", "--quiet", "-i", patch]
        r = subprocess.run(apply, cwd=folder, capture_output=True, text=True)
        if r.returncode != 0:
            first = (r.stderr.strip().splitlines() or ["no output"])[0]
            raise Failed(
                f"`{' '.join(apply[:2])} {os.path.relpath(patch, ROOT)}` failed ({first}): the patch no "
                f"longer applies to the code; make it again against the current code"
            )
    toy = os.path.join(folder, "data", "toy.pt")
    with open(patch if name != "baseline" else os.devnull) as f:
        changes_the_toy = "dataset_sources/" in f.read()
    if baseline_toy and not changes_the_toy:
        os.makedirs(os.path.dirname(toy))
        shutil.copy(baseline_toy, toy)
        return toy
    build = [sys.executable, "data.py", "toy", *toy_flags, "--out", toy]
    r = subprocess.run(build, cwd=folder, capture_output=True, text=True, env=CHILD_ENV)
    if r.returncode != 0:
        raise Failed(f"`python {' '.join(build[1:-2])}` failed in {folder}: {r.stderr.strip()[-300:]}")
    return toy


def run(folder, command, seed, toy, epochs, device, out, log):
    """One training run of the copy in `folder`, its run folder under `out`; returns its metrics.json as a
    dict."""
    args = [*command, "--seed", str(seed), "--epochs", str(epochs), "--data", toy, "--device", device]
    tick = time.time()
    ownership.check_out(log)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w") as f:
        f.write(MARK + "\n")
        f.flush()
        with subprocess.Popen(
            [sys.executable, *args, "--out", out],
            cwd=folder,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=CHILD_ENV,
        ) as child:
            RUNNING.add(child)
            try:
                code = child.wait()
            finally:
                RUNNING.discard(child)
    found = [os.path.join(out, d, "metrics.json") for d in os.listdir(out)] if os.path.isdir(out) else []
    found = [p for p in found if f"seed{seed}" in p and os.path.isfile(p)]
    if code != 0 or len(found) != 1:
        raise Failed(f"`python {' '.join(command)} --seed {seed}` failed in {folder}: its output is in {log}")
    with open(found[0]) as f:
        m = json.load(f)
    print(
        f"{os.path.basename(folder)}: python {' '.join(command)} --seed {seed}: test accuracy "
        f"{m['test']['accuracy']:.4f} ({time.time() - tick:.0f} s)",
        flush=True,
    )
    return m


def table(key):
    """The key as markdown rows: for each exercise and number, both arms and their paired difference."""
    lines = [
        "| exercise | command | number | unchanged code | patched | patched - unchanged | 95% interval | "
        "verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, numbers in key.items():
        for label, arms in numbers.items():
            diff = [p - b for p, b in zip(arms["patched"], arms["baseline"], strict=True)]
            bounds, word = verdict(diff)
            lines.append(
                f"| {name} | `python {' '.join(EXERCISES[name][0])}` | {label} | "
                f"{spread(arms['baseline'])} | {spread(arms['patched'])} | {spread(diff, '+')} | {bounds} | "
                f"{word} |"
            )
    return lines


def parse_args(argv):
    parser = Parser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "exercises", nargs="*", default=list(EXERCISES), help="which exercises (default: all)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="two or more, distinct, 0 or more"
    )
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of every run (paper: 30)")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--splits",
        type=int,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        default=list(data.TOY_DEFAULTS["splits"]),
        help="the toy's videos per split (default: the scripts' default toy)",
    )
    sizes.add_argument("--videos", type=int, help="a toy of this many videos instead, the paper's shares")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (on a GPU: 2-4)")
    parser.add_argument("--out", default="teaching-runs", help="where the copies, runs, logs and the key go")
    parser.add_argument("--list", action="store_true", help="list the exercises and stop")
    args = parser.parse_args(argv)
    unknown = [e for e in args.exercises if e not in EXERCISES]
    if unknown:
        parser.exit(2, f"error: unknown exercise {unknown[0]!r}: choose from {', '.join(EXERCISES)}\n")
    if args.list:
        return parser, args
    if args.epochs < 1 or args.jobs < 1 or min(args.splits) < 1 or (args.videos or 10) < 10:
        parser.exit(
            2, "error: --epochs, --jobs and each of --splits must be at least 1, --videos at least 10\n"
        )
    if args.videos is not None:
        args.toy = ["--videos", str(args.videos)]
    else:
        args.toy = ["--splits", *map(str, args.splits)]
    if len(args.seeds) < 2 or len(set(args.seeds)) < len(args.seeds) or min(args.seeds) < 0:
        parser.exit(
            2, f"error: --seeds {' '.join(map(str, args.seeds))}: two or more distinct seeds, 0 or more\n"
        )
    try:
        data.pick_device(args.device)  # --device cuda without a GPU: refused now, not after the copying
        ownership.check_outside_project(args.out)
        for name in ["baseline", *args.exercises]:
            ownership.check_out(os.path.join(args.out, "copies", name), folder=True, program=PROGRAM)
        for name in ["key.md", "key.json"]:
            ownership.check_out(os.path.join(args.out, name))
        for label, command, seed in arms(args):  # every log and run folder, before the first copy
            ownership.check_out(os.path.join(args.out, "logs", f"{label}-seed{seed}.txt"))
            script = command[0][: -len(".py")]
            run_folder = data.run_name(script, command[command.index("--backbone") + 1], seed=seed)
            ownership.check_out(
                os.path.join(args.out, "runs", label, run_folder), folder=True, program=command[0]
            )
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    return parser, args


def arms(args):
    """(label, command, seed) of every run, in the order they run: per seed, the unchanged code of each
    script the exercises use ("baseline-sound_only"), then each exercise."""
    baselines = sorted({tuple(EXERCISES[name][0]) for name in args.exercises})
    return [
        (label, list(command), seed)
        for seed in args.seeds
        for label, command in [(f"baseline-{c[0][:-3]}", c) for c in baselines]
        + [(name, EXERCISES[name][0]) for name in args.exercises]
    ]


def measure(args):
    """Copies, runs, the key; returns the key and the seconds it took."""
    start = time.time()
    folders, toys = {}, {}
    for name in ["baseline", *args.exercises]:
        folders[name] = os.path.join(args.out, "copies", name)
        with ownership.atomic_folder(folders[name], PROGRAM) as staging:
            toy = prepare(name, staging, args.toy, toys.get("baseline"))
        toys[name] = os.path.join(folders[name], os.path.relpath(toy, staging))
    jobs = {}  # (name or command, seed) -> future
    pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
    try:
        for label, command, seed in arms(args):
            folder = "baseline" if label.startswith("baseline-") else label
            key = tuple(command) if folder == "baseline" else label
            jobs[(key, seed)] = pool.submit(
                run,
                os.path.abspath(folders[folder]),
                command,
                seed,
                os.path.abspath(toys[folder]),
                args.epochs,
                args.device,
                os.path.abspath(os.path.join(args.out, "runs", label)),
                os.path.abspath(os.path.join(args.out, "logs", f"{label}-seed{seed}.txt")),
            )
        results = {key: future.result() for key, future in jobs.items()}
    except (
        BaseException
    ):  # a failure, Ctrl-C or SIGTERM: the runs going on end (each keeps its earlier folder)
        for child in list(RUNNING):
            child.terminate()
        raise
    finally:  # and the runs not yet started never start
        pool.shutdown(wait=True, cancel_futures=True)
    key = {}
    for name in args.exercises:
        key[name] = {}
        for label, where in EXERCISES[name][1]:
            key[name][label] = {
                "baseline": [number(results[(tuple(EXERCISES[name][0]), s)], where) for s in args.seeds],
                "patched": [number(results[(name, s)], where) for s in args.seeds],
            }
    return key, time.time() - start


def main(argv=None):
    parser, args = parse_args(argv)
    if args.list:
        for name, (command, watched) in EXERCISES.items():
            print(f"{name:28s} python {' '.join(command)}  | {', '.join(label for label, _ in watched)}")
        return
    try:
        key, took = measure(args)
        header = (
            f"seeds {' '.join(map(str, args.seeds))}, {args.epochs} epochs, toy `{' '.join(args.toy)}`, "
            f"device {args.device}; mean ± std over seeds; {took:.0f} s in all"
        )
        lines = [header, "", *table(key)]
        print("\n".join(lines))
        record = {
            "written_by": f"{ownership.SIGNATURE} {PROGRAM}",
            "seeds": args.seeds,
            "epochs": args.epochs,
            "toy": args.toy,
            "device": args.device,
            "seconds": round(took),
            "key": key,
        }
        ownership.atomic_write(
            os.path.join(args.out, "key.md"), lambda f: f.write("\n".join([MARK, *lines, ""]).encode())
        )
        ownership.atomic_write(
            os.path.join(args.out, "key.json"), lambda f: f.write(json.dumps(record, indent=1).encode())
        )
    except (Failed, data.DataError) as e:  # one line; a run still going is ended first
        parser.exit(1, f"error: {e}\n")
    except KeyboardInterrupt:
        print(
            "interrupted: the copies and runs finished so far are kept whole, no half-written one",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
