"""The paper-scale study on one GPU, measured, in parts that each fit a short GPU session.

    bash benchmarks/gpu_study.sh                  # every part: 977 videos, 224 px, 30 epochs, seed 0, on CUDA
    PART=toy bash benchmarks/gpu_study.sh         # one part: toy, throughput, study or summary
    VIDEOS=24 SIZE=32 EPOCHS=1 DEVICE=cpu bash benchmarks/gpu_study.sh   # the same steps, tiny, on a CPU

The parts, in order (`--part all` runs them one after the other):
1. toy: builds the paper-shaped toy dataset, `python data.py toy --videos 977 --size 224` (586/147/244 videos,
   224x224 frames and spectrograms) -- CPU work, done once;
2. throughput: `python benchmarks/throughput.py` on it: each script's training rate beside its model-only
   step, the GFLOP per sample and, on CUDA, the fraction of the card's peak; kept in OUT/throughput.json;
3. study: the ten training runs of the study (30 epochs each) and the retrieval, each run as a user runs it
   (`python tt_agg.py --backbone resnet --seed 0 --data ... --out OUT`), timed;
4. summary: a table of every run (wall time, rate, ratio to the model-only step, fraction of the peak, peak
   memory), the whole study's time, then `python study/summary.py OUT` (Tables 2-5, the claims).

A GPU session may end at any moment, so every part keeps what it finished and a second call continues where
the first stopped: the toy is reused when its file is there; a training run is skipped when its folder holds
a complete metrics.json of the same settings (epochs, seed, precision, device, dataset path and fingerprint),
the retrieval when its metrics.json is newer than the towers it used; the throughput part when
OUT/throughput.json has the same settings. `--budget SECONDS` stops the study part, between runs, before a
run that the throughput part's rate says would end past the budget, so a call never dies mid-run at its
session's end. The run wall times are kept in OUT/gpu_study_times.json.

Every call writes what it printed and the full output of every program it ran to a new results file,
OUT/gpu_study-<date>-<time>-<part>.txt: earlier results files are never touched. The training recipe is the
scripts' own (the same batch size, learning rate and epochs on every device); each run's metrics.json records
its settings, precision included.
"""

import argparse
import datetime
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # the project's modules, wherever this is run from

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import torch

    import backbones
    import data
    from safe_files import ownership
    from study.runs import RUNS, SCRIPTS  # the study's runs, defined once
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

PARTS = ["toy", "throughput", "study", "summary"]
PER_VIDEO = {"sound_only": 10, "visual_only": 1, "fc_agg": 10, "tt_agg": 20}  # training samples per video
PROGRAM = "benchmarks/gpu_study.py"
THROUGHPUT = "benchmarks/throughput.py"  # the program that writes OUT/throughput.json
SIGNATURE = f"matsound {PROGRAM}"


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--part", choices=["all", *PARTS], default="all", help="which part to run")
    parser.add_argument("--videos", type=int, default=977, help="videos of the toy (the paper's 977)")
    parser.add_argument("--size", type=int, default=224, help="frame and spectrogram side (the paper's 224)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of every run (paper: 30)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one study per seed")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="cuda")
    parser.add_argument(
        "--precision", choices=["auto", "bf16", "fp32"], default="auto", help="passed to every script"
    )
    parser.add_argument("--out", default="runs-gpu", help="the run folders and the results files")
    parser.add_argument(
        "--scripts",
        nargs="+",
        choices=SCRIPTS,
        default=SCRIPTS,
        help="only these experiments (a shorter study)",
    )
    parser.add_argument(
        "--backbones", nargs="+", choices=sorted(backbones.BACKBONES), default=sorted(backbones.BACKBONES)
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=0,
        help="seconds: the study part starts no run it cannot end within it (0: none)",
    )
    parser.add_argument(
        "--throughput-epochs", type=int, default=3, help="epochs of each throughput script run"
    )
    parser.add_argument("--k", type=int, default=50, help="retrieve.py --k")
    args = parser.parse_args()
    if args.videos < 10 or args.size < 32 or args.epochs < 1 or args.throughput_epochs < 2 or args.k < 1:
        parser.exit(
            2,
            "error: --videos must be 10 or more, --size 32 or more, --epochs 1 or more, "
            "--throughput-epochs 2 or more and --k 1 or more\n",
        )
    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) < len(args.seeds):
        parser.exit(2, "error: --seeds must be distinct and not negative\n")
    if not 0 <= args.budget < math.inf:  # NaN, which no comparison stops, is refused too
        parser.exit(2, f"error: --budget must be a number of seconds, 0 or more, got {args.budget}\n")
    return parser, args


class Study:
    """What every part shares: the settings, the results file it writes to, the times kept between calls."""

    def __init__(self, args, device):
        self.args = args
        self.device = device
        self.precision = backbones.precision(args.precision, device)
        self.out = os.path.abspath(args.out)
        self.data = data.toy_path(
            None, args.size, 0, args.videos
        )  # relative to the project, as the scripts get it
        self.times_path = os.path.join(self.out, "gpu_study_times.json")
        self.throughput_path = os.path.join(self.out, "throughput.json")
        self.times = read_ours(self.times_path) or {"written_by": SIGNATURE}
        if not isinstance(self.times.get("runs"), dict):
            self.times["runs"] = {}  # {run folder: {"wall_s": seconds, "command": how it was run}}
        self.results = None
        self.started = time.time()

    def open_results(self):
        """A new results file, never an existing one: an earlier call's results stay as they are."""
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.results_path = os.path.join(self.out, f"gpu_study-{stamp}-{self.args.part}.txt")
        os.makedirs(self.out, exist_ok=True)
        self.results = open(self.results_path, "x", encoding="utf-8")  # "x": refuses a file that exists
        self.results.write(f"written by matsound: benchmarks/gpu_study.py --part {self.args.part}\n")

    def say(self, text, screen=True):
        """A line of this program's own: into the results file, and on the screen."""
        line = f"[{datetime.datetime.now():%H:%M:%S}] {text}"
        self.results.write(line + "\n")
        self.results.flush()
        if screen:
            print(line, flush=True)

    def run(self, command, screen=False):
        """`python *command` in the project folder, its output into the results file (and on the screen when
        `screen`); its wall time in seconds, or an exit with one line naming the command when it fails."""
        self.say(f"$ python {' '.join(command)}", screen=screen)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its lines reach the results file as they are printed
        tick = time.time()
        child = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            for line in child.stdout:
                self.copy(line, screen)
            child.wait()
        except KeyboardInterrupt:
            self.copy(end_child(child), screen)
            raise
        took = time.time() - tick
        if child.returncode != 0:
            self.say(f"error: the command above failed (exit code {child.returncode}) after {took:.0f} s")
            self.fail(
                f"`python {' '.join(command)}` failed (exit code {child.returncode}); its output is in "
                f"{self.results_path}"
            )
        return took

    def copy(self, output, screen):
        text = output.decode(errors="replace")
        self.results.write(text)
        self.results.flush()
        if screen:
            sys.stdout.write(text)
            sys.stdout.flush()

    def fail(self, line):
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)

    def save_times(self):
        ownership.write_json(self.times, self.times_path)


def end_child(child):
    """After Ctrl-C: the child got it too and ends as it promises (nothing half-written); a child that did not
    get it (the interrupt was sent to this program alone) is passed it. Returns the rest of its output."""
    try:
        rest, _ = child.communicate(timeout=5)  # reads its last words while it ends
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)
        rest, _ = child.communicate()
    return rest


def read_ours(path, program=PROGRAM):
    """The JSON object at `path` when it is there and was written by `program`, else None."""
    if not ownership.owned(path, program):
        return None
    return read_json(path)


def check_places(args):
    """Before any work, each refusal in one line (data.DataError): the device, OUT (not the top of the file
    system, not a link, not inside the project's sources but for its output folders) and the files of ours in
    it that this program replaces."""
    out = os.path.abspath(args.out)
    if os.path.dirname(out) == out:
        raise data.DataError(f"--out {args.out} is the top of the file system: give a folder of its own")
    if os.path.islink(args.out) or (os.path.lexists(args.out) and not os.path.isdir(args.out)):
        raise data.DataError(f"--out {args.out} is a link or a file, not a folder: give a folder")
    ownership.check_outside_project(out)
    ownership.check_out(os.path.join(out, "gpu_study_times.json"))
    ownership.check_out(os.path.join(out, "throughput.json"), program=THROUGHPUT)
    return data.pick_device(args.device)


def describe_machine(study):
    """The machine, as the results need it: date, GPU, driver, torch and CUDA, CPU."""
    now = datetime.datetime.now(datetime.timezone.utc)
    study.say(f"{now:%Y-%m-%d %H:%M} UTC; python {platform.python_version()}")
    if study.device.type == "cuda":
        props = torch.cuda.get_device_properties(study.device)
        study.say(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; driver {nvidia_driver()}")
    study.say(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}; CPU: {cpu_name()}, {os.cpu_count()} cores"
    )
    a = study.args
    study.say(
        f"settings: {a.videos} videos, {a.size} px, {a.epochs} epochs, seeds {' '.join(map(str, a.seeds))}, "
        f"{study.device.type}, {study.precision}; scripts {' '.join(a.scripts)}; "
        f"backbones {' '.join(a.backbones)}"
    )
    study.say(f"results (with every program's full output): {study.results_path}")


def nvidia_driver():
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown (no nvidia-smi)"
    return (
        result.stdout.strip().splitlines()[0]
        if result.returncode == 0 and result.stdout.strip()
        else "unknown"
    )


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --- The parts ---------------------------------------------------------------------------------------------


def part_toy(study):
    """Build the toy dataset unless a dataset of that many videos and that size is at its path."""
    a = study.args
    path = os.path.join(ROOT, study.data)
    if toy_ready(path, a.videos, a.size):
        study.say(f"toy: {study.data} is there (built earlier): reused")
        return
    study.say(f"toy: building {study.data} (CPU work)")
    took = study.run(["data.py", "toy", "--videos", str(a.videos), "--size", str(a.size)])
    study.times["toy"] = {"data": study.data, "build_s": round(took, 1)}
    study.save_times()
    study.say(f"toy: built in {took:.0f} s")


def toy_ready(path, videos, size):
    if not os.path.isfile(path):
        return False
    try:
        d = data.read_dataset(path)
    except data.DataError:
        return False  # data.py toy replaces it if it is ours, or refuses in one line
    return len(d["video_ids"]) == videos and d["frames"].shape[-1] == size


def dataset(study):
    """(fingerprint, training videos) of the toy; its absence ends the call in one line."""
    path = os.path.join(ROOT, study.data)
    if not os.path.isfile(path):
        study.fail(f"no dataset at {study.data}: run the toy part first (--part toy)")
    try:
        d = data.read_dataset(path)
    except data.DataError as e:
        study.fail(str(e))
    return data.fingerprint(d), int((d["split"] == data.SPLITS["train"]).sum())


def throughput_settings(study, fingerprint):
    a = study.args
    name = torch.cuda.get_device_name(study.device) if study.device.type == "cuda" else "cpu"
    return {
        "device": name,
        "precision": study.precision,
        "compile": False,
        "data": study.data,
        "data_fingerprint": fingerprint,
        "epochs": a.throughput_epochs,
    }


def read_throughput(study, fingerprint):
    """The throughput part's kept result when it was made with the present settings, else None."""
    kept = read_ours(study.throughput_path, THROUGHPUT)
    settings = throughput_settings(study, fingerprint)
    if (
        kept is None
        or any(kept.get(k) != v for k, v in settings.items())
        or not isinstance(kept.get("rows"), list)
    ):
        return None
    return kept


def part_throughput(study):
    a = study.args
    fingerprint, _ = dataset(study)
    kept = read_throughput(study, fingerprint)
    if kept is not None and {(r["experiment"], r["backbone"]) for r in kept["rows"]} >= {
        (s, b) for s in a.scripts for b in a.backbones
    }:
        study.say(f"throughput: {study.throughput_path} holds this setting's result (measured earlier): kept")
        return
    study.say("throughput: each script's rate beside its model-only step")
    command = [THROUGHPUT, "--data", study.data, "--device", study.device.type]
    command += ["--precision", study.precision, "--epochs", str(a.throughput_epochs)]
    command += ["--experiments", *a.scripts, "--backbones", *a.backbones, "--json", study.throughput_path]
    took = study.run(command, screen=True)
    study.times["throughput"] = {"wall_s": round(took, 1)}
    study.save_times()
    study.say(f"throughput: {took:.0f} s")


def finished_training(folder, expect):
    """Whether `folder` holds a complete metrics.json of a run with the settings `expect` (flags and the
    dataset's fingerprint)."""
    m = read_json(os.path.join(folder, "metrics.json"))
    if m is None or not isinstance(m.get("args"), dict) or not isinstance(m.get("curves"), list):
        return False
    same = all(m["args"].get(k) == v for k, v in expect.items() if k != "data_fingerprint")
    whole = len(m["curves"]) == expect["epochs"] and isinstance(m.get("test"), dict)
    return same and whole and m.get("data_fingerprint") == expect["data_fingerprint"]


def finished_retrieval(folder, towers, expect):
    """Whether `folder` holds the retrieval of the towers in `towers` (a model.pt) as they are now."""
    m = read_json(os.path.join(folder, "metrics.json"))
    if m is None or not os.path.isfile(towers):
        return False
    same = (m.get("trained_seed"), m.get("trained_epochs"), m.get("k"), m.get("data_fingerprint")) == (
        expect["seed"],
        expect["epochs"],
        expect["k"],
        expect["data_fingerprint"],
    )
    return same and os.path.getmtime(os.path.join(folder, "metrics.json")) >= os.path.getmtime(towers)


def read_json(path):
    """The JSON object at `path`, or None when it is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def study_commands(study, seed):
    """(run folder, command, script, backbone) of every run of one seed, in order: the training runs, then
    the retrieval (script "retrieve")."""
    a = study.args
    common = ["--epochs", str(a.epochs), "--device", study.device.type, "--precision", study.precision]
    common += ["--data", study.data, "--out", study.out]
    commands = []
    for script, backbone, weighted in RUNS:
        if script in a.scripts and backbone in a.backbones:
            flags = ["--backbone", backbone, *(["--weighted"] * weighted), "--seed", str(seed)]
            name = data.run_name(script, backbone, weighted, seed)
            commands.append((name, [f"{script}.py", *flags, *common], script, backbone))
    if "tt_agg" in a.scripts and "resnet" in a.backbones:  # the paper retrieves with the ResNet towers
        towers = os.path.join(study.out, data.run_name("tt_agg", "resnet", seed=seed))
        command = ["retrieve.py", "--k", str(a.k), "--run", towers, "--seed", str(seed)]
        command += ["--device", study.device.type, "--out", study.out]
        commands.append((data.run_name("retrieve", "resnet", seed=seed), command, "retrieve", "resnet"))
    return commands


def expected_s(study, kept, script, backbone, train_videos):
    """Seconds the throughput part's measured script rate says a run's training takes; 0 when there is no
    such measurement (the retrieval, or no throughput result kept)."""
    for row in (kept or {}).get("rows", []):
        if (row.get("experiment"), row.get("backbone")) == (script, backbone) and row.get("script_per_s"):
            return study.args.epochs * train_videos * PER_VIDEO[script] / row["script_per_s"]
    return 0


def finished(study, fingerprint, seed, name, command, script):
    """Whether the run `name` of `seed` (made by `command`) is in OUT, finished with the present settings."""
    a = study.args
    expect = {"epochs": a.epochs, "seed": seed, "precision": study.precision, "device": study.device.type}
    expect.update({"data": study.data, "data_fingerprint": fingerprint})
    folder = os.path.join(study.out, name)
    if script == "retrieve":
        towers = os.path.join(command[command.index("--run") + 1], "model.pt")
        return finished_retrieval(folder, towers, {**expect, "k": a.k})
    return finished_training(folder, expect)


def part_study(study):
    """Every run not finished yet; False when the budget stopped it before the end."""
    a = study.args
    fingerprint, train_videos = dataset(study)
    kept = read_throughput(study, fingerprint)
    for seed in a.seeds:
        for name, command, script, backbone in study_commands(study, seed):
            if finished(study, fingerprint, seed, name, command, script):
                study.say(f"study: {name} skipped: finished earlier with these settings")
                continue
            need = expected_s(study, kept, script, backbone, train_videos)
            spent = time.time() - study.started
            if a.budget and spent + need > a.budget:
                study.say(
                    f"study: stopping before {name}: {spent:.0f} s of the {a.budget:.0f} s budget spent, it "
                    f"needs about {need:.0f} s more; the runs finished so far are kept: run the same command "
                    f"again to continue"
                )
                return False
            took = study.run(command)
            study.times["runs"][name] = {"wall_s": round(took, 1), "command": "python " + " ".join(command)}
            study.save_times()
            study.say(f"study: {name} finished in {took:.0f} s")
    return True


def median_rate(m):
    """The median samples/s of a run's epochs after the first (its warm-up), or of its one epoch."""
    rates = sorted(c["samples_per_s"] for c in m["curves"][1:] or m["curves"])
    return rates[len(rates) // 2]


def part_summary(study):
    """A row per run: wall time, rate, ratio to the model-only step, fraction of the peak, peak memory; the
    whole study's time; then the tables, by `python study/summary.py OUT`."""
    a = study.args
    fingerprint, _ = dataset(study)
    kept = read_throughput(study, fingerprint) or {"rows": [], "peak_tflops": None}
    model = {(r["experiment"], r["backbone"]): r for r in kept["rows"]}
    study.say(f"summary: every run in {study.out}")
    study.say(
        f"{'run':<38} {'wall s':>7} {'rate/s':>9} {'ratio':>6} {'TFLOP/s':>8} {'of peak':>8} {'peak MiB':>9}"
    )
    total, missing, untimed = 0.0, [], []
    for seed in a.seeds:
        for name, command, script, backbone in study_commands(study, seed):
            if not finished(study, fingerprint, seed, name, command, script):
                missing.append(name)
                continue
            m = read_json(os.path.join(study.out, name, "metrics.json"))
            wall = study.times["runs"].get(name, {}).get("wall_s")
            if wall is None:
                untimed.append(name)
            else:
                total += wall
            study.say(summary_row(name, script, m, wall, model.get((script, backbone)), kept["peak_tflops"]))
    study.say(f"the study's runs took {total:.0f} s in all")
    if untimed:
        study.say(f"not counted, their time was not recorded: {', '.join(untimed)}")
    if missing:
        study.say(f"not finished with these settings (run the study part): {', '.join(missing)}")
    if "toy" in study.times:
        study.say(f"the toy's build took {study.times['toy']['build_s']:.0f} s (not counted above)")
    study.run(["study/summary.py", study.out], screen=True)


def summary_row(name, script, m, wall, model, peak):
    """One run's line: its wall time; for a training run its rate, and with the throughput part's `model` row
    its ratio to the model-only step and TFLOP/s (with the card's `peak`, the fraction of it); peak memory."""
    wall_cell = "-"
    if wall is not None:
        wall_cell = f"{wall:.1f}"
    line = f"{name:<38} {wall_cell:>7}"
    if script == "retrieve":
        return line
    rate = median_rate(m)
    ratio, tflops, of_peak = "-", "-", "-"
    if model:
        ratio = f"{rate / model['model_per_s']:.2f}"
        tflops = f"{rate * model['gflop_per_sample'] / 1000:.2f}"
    if model and peak:
        of_peak = f"{rate * model['gflop_per_sample'] / 1000 / peak:.1%}"
    return f"{line} {rate:>9.1f} {ratio:>6} {tflops:>8} {of_peak:>8} {m.get('peak_memory_mb') or 0:>9.0f}"


def run_parts(study):
    """The part asked for, or all four in order; a study stopped by the budget ends the call before the
    summary (which would be of a study not finished)."""
    parts = PARTS if study.args.part == "all" else [study.args.part]
    for part in parts:
        if part == "toy":
            part_toy(study)
        if part == "throughput":
            part_throughput(study)
        if part == "study" and not part_study(study):
            study.say(f"stopped by the budget after {time.time() - study.started:.0f} s: not done")
            return
        if part == "summary":
            part_summary(study)
    study.say(f"done in {time.time() - study.started:.0f} s; results in {study.results_path}")


def main():
    parser, args = parse_args()
    try:
        device = check_places(args)
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    study = Study(args, device)
    try:
        study.open_results()
    except OSError as e:  # FileExistsError too: a call in the same second made it
        parser.exit(2, f"error: cannot create {study.results_path} ({e.strerror}): choose another --out\n")
    try:
        describe_machine(study)
        run_parts(study)
    except KeyboardInterrupt:
        study.say("interrupted: what finished is kept; run the same command again to continue", screen=False)
        print(
            f"interrupted: what finished is kept in {study.out}; run the same command again to continue",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
