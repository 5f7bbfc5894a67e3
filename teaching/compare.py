"""Your change against the unchanged code: the same command over seeds, the paired difference and a verdict.

    python teaching/compare.py --seeds 0 1 2 -- tt_agg.py --backbone resnet
    python teaching/compare.py --seeds 0 1 2 --number test.accuracy macro_recall -- sound_only.py

Run it in a git checkout of the project (a student copy is one) after changing the code and before committing
the change: it copies the files git tracks as they are now (the changed arm: your uncommitted changes, never
an untracked file) and the last commit, HEAD (the unchanged arm), runs `python SCRIPT FLAGS --seed S --out
...` in both for every seed, and prints, for each number watched, both arms' mean ± std over the seeds, the
paired difference (changed - unchanged, seed by seed) with its 95% interval (Student's t) and the verdict:
"up" or "down" when the interval excludes 0, else "within noise". Your files are never touched. Everything
is kept in a folder of its own, --out (runs/compare by default): `changed/` and `unchanged/` with each seed's
run folder (metrics.json, figures: the confusion matrix an exercise asks about), `log-ARM-seedS.txt` and the
table in `comparison.txt`; a later comparison replaces it only if it is one of ours. A blank not yet written
ends the comparison in one line naming it; a run that fails, in one line naming its log.

Each arm trains on its own data: without --data, the script builds its default toy in that arm's folder, so a
change to the toy generator counts. A number is a place in the run's metrics.json ("test.accuracy", "val.f1")
or "macro_recall" (the mean recall over materials, from the test confusion matrix) or "recall.MATERIAL".
"""

import argparse
import glob
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import data
    from metrics import MIN_SEEDS, mean_interval  # the 95% t-interval the study uses too
    from safe_files import ownership
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

IGNORED = (".git", "data", "runs", "runs-*", "__pycache__", ".pytest_cache", "teaching-runs", ".tmp-*")
PROGRAM = "teaching/compare.py"


class Parser(argparse.ArgumentParser):
    """argparse with a bad argument ended in one line ("error: ...", exit 2) instead of the usage block, as
    every program of the project ends."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def copy_project(source, dest):
    """The project's files in `source` (not its data, runs or git history) into `dest` (new, or empty)."""
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(*IGNORED), dirs_exist_ok=True)


def tracked_files(repo):
    """The paths git tracks in `repo` (its index: committed or added), relative."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    return [path for path in listed.decode().split("\0") if path]


def copy_tracked(repo, dest):
    """The files git tracks in `repo`, as they are in its working tree, into `dest`: uncommitted changes
    included, untracked files (notes, answers, data) never."""
    for path in tracked_files(repo):
        source, target = os.path.join(repo, path), os.path.join(dest, path)
        if not os.path.lexists(source):
            continue  # deleted in the working tree: deleted in the copy
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)


def export_commit(repo, commit, dest):
    """The files of `commit` in the git repository `repo`, as committed, into `dest` (new, or empty)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True, check=True
    )
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")


def number(m, where):
    """One watched number of a run's metrics.json `m`; NaN where it is undefined (a material with no test
    clip)."""
    if where == "macro_recall" or where.startswith("recall."):
        recalls = {}
        for name, row in zip(data.MATERIALS, m.get("test_confusion", []), strict=False):
            if sum(row):
                recalls[name] = row[data.MATERIALS.index(name)] / sum(row)
        if where == "macro_recall":
            return statistics.mean(recalls.values())
        return recalls.get(where.split(".", 1)[1], float("nan"))
    split, key = where.split(".", 1)
    return m[split][key]


def spread(values, sign=""):
    """'mean ± std' of the seeds' values ('+' shown with sign="+"); 'n/a' where a value is undefined."""
    if any(v != v for v in values):
        return "n/a"
    std = 0.0
    if len(values) > 1:
        std = statistics.stdev(values)
    return f"{statistics.mean(values):{sign}.3f} ± {std:.3f}"


def verdict(diff):
    """(the paired difference's 95% interval over seeds, 'up', 'down', 'within noise' or 'no change'; 'too few
    seeds' below three); the interval is metrics.mean_interval, the study's too, so the key and a student's
    comparison count alike."""
    if any(d != d for d in diff):
        return "n/a", "n/a"
    mean, half, n = mean_interval(diff)
    if half is None:
        return "n/a", "one seed: run more"
    low, high = mean - half, mean + half
    if (
        n < MIN_SEEDS
    ):  # two seeds: an interval that rests on one spread, often zero on the toy's few test videos
        return f"[{low:+.3f}, {high:+.3f}]", f"too few seeds ({MIN_SEEDS} or more)"
    if low > 0:
        word = "up"
    elif high < 0:
        word = "down"
    elif half == 0 and mean == 0:
        word = "no change"
    else:
        word = "within noise"
    return f"[{low:+.3f}, {high:+.3f}]", word


class NotWritten(Exception):
    """A run stopped at a blank the student has not written yet: the message names it."""


def run_seed(folder, command, seed, log):
    """`python *command --seed SEED --out runs-SEED` in `folder`; its metrics.json as a dict. A run that
    reaches an unwritten blank: NotWritten; any other failed run: RuntimeError naming its log."""
    out = os.path.join(folder, f"runs-{seed}")
    argv = [sys.executable, *command, "--seed", str(seed), "--out", out]
    with open(log, "w") as f:
        code = subprocess.run(argv, cwd=folder, stdout=f, stderr=subprocess.STDOUT).returncode
    found = glob.glob(os.path.join(out, "*", "metrics.json"))
    if code != 0 or len(found) != 1:
        with open(log, encoding="utf-8", errors="replace") as f:
            blank = re.search(r"NotImplementedError: exercise (\w+)", f.read())
        if blank:
            raise NotWritten(
                f"the blank {blank[1]} is not written yet (`python {command[0]}` needs it): write it, then "
                f"check it with `pytest test_all.py -k {blank[1]}` and commit it"
            )
        arm = os.path.basename(folder)
        raise RuntimeError(
            f"`python {' '.join(command)} --seed {seed}` failed ({arm}): its output is in {log}"
        )
    with open(found[0]) as f:
        return json.load(f)


def parse_args(argv):
    parser = Parser(
        description=__doc__.split("\n\n")[0],
        usage="python teaching/compare.py [--seeds S ...] [--number WHERE ...] -- SCRIPT [FLAGS ...]",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds, two or more (default 0 1 2)"
    )
    parser.add_argument(
        "--number",
        nargs="+",
        default=None,
        help="what to compare, places in metrics.json (default: test.accuracy, and test.f1 for tt_agg.py)",
    )
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "runs", "compare"),
        help="the comparison's folder: both arms' runs, logs, the table (default: runs/compare)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the script and its flags")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    for i, flag in enumerate(command):  # your relative paths, made absolute: the runs start in the copies
        if flag == "--data" and i + 1 < len(command):
            command[i + 1] = os.path.abspath(command[i + 1])
        elif flag.startswith("--data="):
            command[i] = "--data=" + os.path.abspath(flag.split("=", 1)[1])
    if not command or not command[0].endswith(".py") or not os.path.isfile(os.path.join(ROOT, command[0])):
        parser.exit(
            2, "error: name a script of the project after --, e.g. `-- tt_agg.py --backbone resnet`\n"
        )
    if any(flag.startswith(("--seed", "--out")) for flag in command[1:]):
        parser.exit(
            2, "error: leave --seed and --out to compare.py (it runs every seed, in its own folder)\n"
        )
    if len(args.seeds) < 2 or len(set(args.seeds)) < len(args.seeds) or min(args.seeds) < 0:
        parser.exit(
            2, "error: --seeds needs two or more distinct seeds, 0 or more (a difference needs a spread)\n"
        )
    if args.number is None:
        args.number = ["test.accuracy", "test.f1"] if command[0] == "tt_agg.py" else ["test.accuracy"]
    wrong = [w for w in args.number if w != "macro_recall" and "." not in w]
    if wrong:
        parser.exit(2, f"error: --number {wrong[0]}: give a place in metrics.json such as test.accuracy\n")
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        parser.exit(
            2, f"error: {ROOT} is not a git checkout: compare.py needs the last commit as its baseline\n"
        )
    head = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    if head.returncode != 0:
        parser.exit(2, f"error: {ROOT} has no commit yet: commit the unchanged code first\n")
    try:
        ownership.check_outside_project(args.out)
        ownership.check_out(args.out, folder=True)
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    return parser, args, command


def report(command, seeds, results, numbers):
    """The table: per number, both arms over the seeds, the paired difference, its interval, the verdict."""
    lines = [
        f"python {' '.join(command)}, seeds {' '.join(map(str, seeds))}: mean ± std over seeds",
        f"{'number':16s} {'unchanged (HEAD)':>16s} {'changed':>16s} {'changed - unchanged':>20s} "
        f"{'95% interval':>18s}  verdict",
    ]
    for where in numbers:
        before = [number(results[("unchanged", s)], where) for s in seeds]
        after = [number(results[("changed", s)], where) for s in seeds]
        diff = [a - b for a, b in zip(after, before, strict=True)]
        bounds, word = verdict(diff)
        row = f"{where:16s} {spread(before):>16s} {spread(after):>16s} {spread(diff, '+'):>20s}"
        lines.append(f"{row} {bounds:>18s}  {word}")
    # Each run's own test-split interval (metrics.test_interval), kept beside the seeds' verdict.
    intervals = [m["test_interval"] for m in results.values() if isinstance(m.get("test_interval"), dict)]
    if intervals:
        half = statistics.mean((i["high"] - i["low"]) / 2 for i in intervals)
        name, videos = intervals[0]["name"], intervals[0]["videos"]
        lines.append(
            f"one run's test {name} alone: ± {half:.3f} (95%, over its {videos} test videos; the paired "
            f"interval over seeds is what decides)"
        )
    return lines


def compare(work, command, args):
    """Both arms in `work`, every seed: the table's lines. Raises NotWritten or RuntimeError."""
    copy_tracked(ROOT, os.path.join(work, "changed"))
    export_commit(ROOT, "HEAD", os.path.join(work, "unchanged"))
    results = {}
    for seed in args.seeds:
        for arm in ["unchanged", "changed"]:
            tick = time.time()
            folder = os.path.join(work, arm)
            log = os.path.join(work, f"log-{arm}-seed{seed}.txt")
            m = run_seed(folder, command, seed, log)
            results[(arm, seed)] = m
            shown = ", ".join(f"{w} {number(m, w):.4f}" for w in args.number)
            print(f"{arm:9s} seed {seed}: {shown} ({time.time() - tick:.0f} s)", flush=True)
    return report(command, args.seeds, results, args.number)


def main(argv=None):
    parser, args, command = parse_args(argv)
    failed = None
    try:
        with ownership.atomic_folder(args.out, PROGRAM) as work:
            try:
                lines = compare(work, command, args)
            except (RuntimeError, KeyError, ValueError, TypeError) as e:
                failed = e  # kept: the logs say why
                lines = [f"failed: {e}"]
            with open(os.path.join(work, "comparison.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
    except NotWritten as e:
        parser.exit(1, f"error: {e}\n")
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    except subprocess.CalledProcessError:
        parser.exit(1, "error: git could not list or export the project: is this a git checkout?\n")
    except KeyboardInterrupt:
        print("interrupted: nothing kept (your files are unchanged)", file=sys.stderr)
        sys.exit(130)
    if isinstance(failed, RuntimeError):
        log = re.sub(r"its output is in .*/(log-[^/]*)$", rf"its output is in {args.out}/\1", str(failed))
        parser.exit(1, f"error: {log}\n")
    if failed is not None:
        parser.exit(1, f"error: a run's metrics.json lacks {failed} (kept in {args.out})\n")
    print("\n".join(lines))
    print(f"kept in {args.out}: both arms' runs (metrics.json, figures), the logs and comparison.txt")


if __name__ == "__main__":
    main()
