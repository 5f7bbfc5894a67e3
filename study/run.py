"""The whole study in one command: the paper's ten training runs and the retrieval, for each seed.

    python study/run.py --seeds 0 1 2          # 3 x (10 training runs + retrieve), then the summary
    python study/run.py --seeds 0 --epochs 2   # a quick look that everything runs

Each run is the script run as a user runs it (`python tt_agg.py --backbone resnet --seed 1 ...`), one
after the other, so that its output is what a student would see; it goes to the screen and into a log in
OUT/study-logs/, and its run folder is OUT/<script>-<backbone>[-weighted]-seed<k>/, so that seeds never
overwrite each other. The wall time of every run is printed as it ends and saved in OUT/study_times.json; at
the end `python study/summary.py OUT` prints every table as mean ± std over the seeds, with the paper's claims
checked as paired differences.

What it writes follows the project's rule: study_times.json and study-logs/ are replaced only when this
program wrote them, and OUT may not lie inside the project's sources (runs/ and the other output folders
excepted).
"""

import argparse
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as `python study/run.py`: the project's modules are one folder up

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import data
    from safe_files import ownership
    from study.runs import RUNS
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

PROGRAM = "study/run.py"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one study per seed")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of every run (paper: 30)")
    parser.add_argument("--data", default=None, help="a dataset file (default: the toy dataset)")
    parser.add_argument(
        "--device", choices=["auto", "cuda", "cpu"], default="auto", help="passed to every run"
    )
    parser.add_argument("--out", default="runs", help="where the runs, study_times.json and study-logs/ go")
    parser.add_argument("--k", type=int, default=50, help="retrieve.py --k")
    args, extra = parser.parse_known_args(argv)  # anything else (e.g. --precision fp32) goes to every script
    try:
        data.check_flags(argparse.Namespace(epochs=args.epochs))
        in_range, allowed = data.FLAGS["seed"]
        for seed in args.seeds:
            if not in_range(seed):
                raise data.DataError(f"--seeds must be {allowed}, got {seed}")
        if len(set(args.seeds)) < len(args.seeds):
            raise data.DataError(f"--seeds must be distinct, got {' '.join(map(str, args.seeds))}")
        if args.k < 1:
            raise data.DataError(f"--k must be 1 or more, got {args.k}")
        if args.data is not None and not os.path.isfile(args.data):
            raise data.DataError(
                f"no dataset file at {args.data}: make one with `python data.py toy --out ...`"
            )
        data.pick_device(args.device)  # --device cuda without a GPU: refused now, not after the first run
        ownership.check_outside_project(args.out)
        ownership.check_out(os.path.join(args.out, "study_times.json"))
        ownership.check_out(os.path.join(args.out, "study-logs"), folder=True, program=PROGRAM)
        for seed in args.seeds:  # every run's folder, before the first run: not found out after hours
            for script, backbone, weighted in RUNS:
                name = data.run_name(script, backbone, weighted, seed)
                ownership.check_out(os.path.join(args.out, name), folder=True, program=f"{script}.py")
            name = data.run_name("retrieve", "resnet", seed=seed)
            ownership.check_out(os.path.join(args.out, name), folder=True, program="retrieve.py")
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    return args, extra


def commands(seed, args, extra):
    """The study's commands for one seed: the ten training runs, then the retrieval with the ResNet towers."""
    # Each flag and its value as one word (--out=VALUE): a value that begins with '-' stays a value.
    common = [f"--epochs={args.epochs}", f"--device={args.device}", f"--out={args.out}"]
    if args.data:
        common.append(f"--data={args.data}")
    found = []
    for script, backbone, weighted in RUNS:
        flags = ["--backbone", backbone]
        if weighted:
            flags.append("--weighted")
        found.append([f"{script}.py", *flags, f"--seed={seed}", *common, *extra])
    tt_agg_run = os.path.join(args.out, data.run_name("tt_agg", "resnet", seed=seed))
    found.append(
        ["retrieve.py", f"--k={args.k}", f"--run={tt_agg_run}", f"--seed={seed}"]
        + [f"--device={args.device}", f"--out={args.out}"]
    )
    return found


def run_logged(command, log_path):
    """Run `python COMMAND` from the project folder, its output shown as it comes and kept in `log_path`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # every line as it is printed, not when a buffer fills
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, command[0]), *command[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            for line in process.stdout:
                print(line, end="", flush=True)
                log.write(line)
        except (
            BaseException
        ):  # Ctrl-C reaches the run from the terminal, SIGTERM only this runner: pass it on
            process.terminate()
            raise
        finally:  # wait until the run has ended: no run goes on training behind the study's back
            process.wait()
    return process.returncode


def run_study(args, extra, logs):
    """Every seed's commands, one after the other; stops at the first that fails.
    Returns (times, failed), failed being (command, exit code, log name) or None."""
    times = []
    start = time.time()
    for seed in args.seeds:
        for i, command in enumerate(commands(seed, args, extra)):
            line = "python " + " ".join(command)
            log_name = f"seed{seed}-{i + 1:02d}-{command[0].removesuffix('.py')}.log"
            print(f"\n=== seed {seed}: {line}", flush=True)
            tick = time.time()
            code = run_logged(command, os.path.join(logs, log_name))
            took = time.time() - tick
            times.append({"seed": seed, "command": line, "wall_s": round(took, 1), "returncode": code})
            print(f"=== {took:.0f} s (study so far {time.time() - start:.0f} s)", flush=True)
            if code != 0:
                return times, (line, code, log_name)
    return times, None


def main(argv=None):
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    logs = os.path.join(args.out, "study-logs")
    start = time.time()
    try:
        with ownership.atomic_folder(logs, PROGRAM) as staged:
            times, failed = run_study(args, extra, staged)
        total = round(time.time() - start, 1)
        record = {"written_by": f"{ownership.SIGNATURE} {PROGRAM}", "seeds": args.seeds, "total_s": total}
        ownership.write_json({**record, "runs": times}, os.path.join(args.out, "study_times.json"))
    except KeyboardInterrupt:
        message = (
            f"interrupted: the runs finished so far are kept in {args.out}; nothing half-written is left"
        )
        print(message, file=sys.stderr)
        sys.exit(130)
    except data.DataError as e:  # something not ours appeared in the way while the study ran
        sys.exit(f"error: {e}")
    if failed:
        line, code, log_name = failed
        sys.exit(f"error: `{line}` failed (exit code {code}); its log: {os.path.join(logs, log_name)}")
    print(f"\nthe study took {time.time() - start:.0f} s; summary:", flush=True)
    sys.exit(subprocess.run([sys.executable, os.path.join(ROOT, "study", "summary.py"), args.out]).returncode)


if __name__ == "__main__":
    main()
