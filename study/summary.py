"""The whole study at a glance: `python study/summary.py runs/`.

It prints the paper's Tables 2-5 from the saved runs, each number as mean ± std over the seeds found, beside
the paper's numbers and the trivial baselines; then the paper's conclusions checked as paired differences over
the seeds (study/claims.py); names the runs still missing with the command that makes each, and draws Figures
2 and 5-9 into runs/figures/ (study/figures.py).
"""

import argparse
import os
import signal
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as `python study/summary.py`: the project's modules are one folder up

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    from metrics import (
        PAPER,
        PAPER_FIGURE_8,
        format_retrieval_table,
        mean_interval,
    )
    from safe_files import ownership
    from study import claims
    from study.figures import write_figures
    from study.runs import (
        PAPER_EPOCHS,
        STUDY_COMMAND,
        TABLE_METRICS,
        all_runs,
        backbone_name,
        find_dataset,
        read_runs,
        run_command,
        study_backbones,
        study_source,
    )
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

TITLE = 30  # the width of the paper tables' row titles
TABLE_CAPTIONS = {
    2: "validation and test accuracy of the sound network",
    3: "accuracy, precision, recall and F1 of the visual network",
    4: "validation and test accuracy of the FC_AGG network",
    5: "accuracy, precision, recall and F1 of the TT_AGG network",
}


def plural(n, word):
    """'1 run', '2 runs'."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}s"


def cell(values):
    """One table cell: '0.6370' for one seed (or seeds that agree), '0.637 ± 0.020' (mean ± sample std) for
    several, '-' for none."""
    if not values:
        return f"{'-':>13}"
    if max(values) == min(values):
        return f"{values[0]:>13.4f}"
    spread = f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
    return f"{spread:>13}"


def row_title(key, seeds):
    """The heading of one row of a paper table: backbone (and loss, in Table 3) and the number of seeds; a
    missing run's command; runs trained for other than the paper's 30 epochs say so (not comparable)."""
    script, backbone, weighted = key
    title = backbone_name(backbone)
    if script == "visual_only":
        title += ", weighted loss" if weighted else ", unweighted loss"
    if not seeds:
        return f"{title}: not run yet, make it with `{run_command(*key)}`"
    if len(seeds) > 1:
        title += f", mean ± std over {len(seeds)} seeds ({', '.join(map(str, sorted(seeds)))})"
    else:
        title += f", one seed ({next(iter(seeds))})"
    epochs = {m.get("args", {}).get("epochs") for m in seeds.values() if isinstance(m.get("args"), dict)}
    if epochs - {PAPER_EPOCHS}:
        trained = "/".join(map(str, sorted(epochs, key=str)))
        word = "epochs"
        if epochs == {1}:
            word = "epoch"
        title += f" (trained {trained} {word}; the paper trains {PAPER_EPOCHS})"
    return title


def format_table(number, runs, source):
    """The lines of Table `number` laid out as the paper's: its rows in the paper's order, each a block of our
    numbers (mean ± std over seeds), the paper's and the trivial baseline on our data."""
    names = TABLE_METRICS[number]
    group = 14 * len(names) - 1  # the width of one column group: a 13-wide cell and a space per metric
    heads = " ".join(f"{n[:13]:>13}" for n in names)
    lines = [
        f"Table {number}: {TABLE_CAPTIONS[number]} ({source}; the paper's: Greatest Hits)",
        f"{'':<{TITLE}} | {'validation':^{group}} | {'test':^{group}}",
        f"{'':<{TITLE}} | {heads} | {heads}",
    ]
    for key in [k for k, p in PAPER.items() if p["table"] == number]:
        seeds = runs.get(key, {})
        ms = [seeds[s] for s in sorted(seeds)]
        lines.append(row_title(key, seeds))
        if ms:
            lines.append(format_row("ours", [[m["val"], m["test"]] for m in ms], names))
            lines += format_intervals(ms)
        lines.append(format_row("paper", [[PAPER[key]["val"], PAPER[key]["test"]]], names))
        if ms:
            baselines = [[m["baseline"]["val"], m["baseline"]["test"]] for m in ms]
            lines.append(format_row("baseline: " + ms[0]["baseline"]["test"]["name"], baselines, names))
    return lines


def format_row(label, scores, names):
    """One row of a paper table: `scores` holds [validation scores, test scores] per seed, each a dict with
    the metrics `names`; each cell is their mean ± std over the seeds (see `cell`)."""
    parts = []
    for part in range(2):  # validation, then test
        parts.append(" ".join(cell([seed[part][n] for seed in scores]) for n in names))
    return f"{label:<{TITLE}} | " + " | ".join(parts)


def format_intervals(ms):
    """A line on the test split's own noise, from the 95% interval each run records (metrics.test_interval):
    the half-width of one run's interval, on average over the seeds; none for runs that record none."""
    intervals = [m["test_interval"] for m in ms if isinstance(m.get("test_interval"), dict)]
    try:
        halves = [(i["high"] - i["low"]) / 2 for i in intervals]
        name, videos = intervals[0]["name"], intervals[0]["videos"]
    except (KeyError, TypeError, IndexError):
        return []
    return [
        f"{'':<{TITLE}}   one run's test {name}: ± {statistics.mean(halves):.3f} "
        f"(95%, over {videos} test videos)"
    ]


def format_claims(runs):
    """The paper's conclusions, each with the toy's paired difference over seeds and a verdict."""
    w = 74
    lines = [
        "The paper's conclusions, checked: the difference per seed, its mean [95% interval of the mean] "
        "(seeds), and the verdict (study/claims.py says how it is reached)",
        f"{'claim (paper)':<{w}} {'compared':<46} {'difference':>26}  verdict",
    ]
    for claim, paper, kind, a, b, value, what in claims.claims(study_backbones()):
        diffs = claims.paired(runs, a, b, value)
        if not diffs:
            lines.append(f"{claim + ' (' + paper + ')':<{w}} {what:<46} {'runs missing or too short':>26}  -")
            continue
        mean, half, n = mean_interval(diffs)
        spread = "[no spread]"
        if half is not None:
            spread = f"[{mean - half:+.3f}, {mean + half:+.3f}]"
        lines.append(
            f"{claim + ' (' + paper + ')':<{w}} {what:<46} {mean:+.3f} {spread} ({n})"
            f"  {claims.verdict(diffs, kind)}"
        )
    return lines


def summarize(folder, runs, notes):
    """Print the study read from `folder` (notes, Tables 2-5, Figure 8 in numbers, the paper's claims, missing
    runs) and write the figures into folder/figures."""
    source, source_notes = study_source(runs)
    dataset, data_notes = find_dataset(runs, folder)
    study = [*PAPER, ("retrieve", "resnet", False)]  # the ten training runs and the paper's retrieval
    seeds = sorted({s for key in study for s in runs.get(key, {})}) or [0]
    missing = [(key, s) for s in seeds for key in study if s not in runs.get(key, {})]
    seed_words = "seed"
    if len(seeds) > 1:
        seed_words = "seeds"
    print(
        f"The study in {folder}: {plural(len(all_runs(runs)), 'run')}, {seed_words} "
        f"{', '.join(map(str, seeds))}, {source}"
    )
    for note in notes + source_notes + data_notes:
        print(f"note: {note}")
    for number in TABLE_METRICS:
        print("\n" + "\n".join(format_table(number, runs, source)))
    for key in [k for k in sorted(runs) if k[0].startswith("retrieve")]:  # image -> sound, sound -> image
        print("\n" + "\n".join(format_retrieval_table([m for _, m in sorted(runs[key].items())], source)))
        if key == ("retrieve", "resnet", False):
            print(f"paper (Figure 8, one test image, ResNet): {PAPER_FIGURE_8}")
    print("\n" + "\n".join(format_claims(runs)))
    if missing:
        print(f"\nMissing runs ({len(missing)}): make them with")
        for key, seed in missing:
            print(f"  {run_command(*key, seed)}")
        print(f"(or every seed's study at once: {STUDY_COMMAND})")
        print(f"then run `python study/summary.py {folder}` again.")
    figures = os.path.join(folder, "figures")
    with ownership.atomic_folder(figures, "study/summary.py") as staged:  # all the figures, or none
        paths = write_figures(runs, dataset, source, staged)
    print(
        f"\nFigures 2, 5, 6, 7, 8, 9 written to {figures}/: " + ", ".join(os.path.basename(p) for p in paths)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="The whole study at a glance: print the paper's Tables 2-5 from the saved runs, beside "
        "the paper's numbers and the trivial baselines, name the runs still missing with the command that "
        "makes each, and draw Figures 2, 5, 6, 7, 8 and 9 as PNGs into RUNS/figures/."
    )
    parser.add_argument(
        "runs",
        nargs="?",
        default="runs",
        help="the folder the scripts saved their runs in, one <script>-<backbone>[-weighted]-seed<k>/"
        "metrics.json each (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:  # the figures' folder: found out now, before the work
        ownership.claim(os.path.join(args.runs, "figures"), folder=True, program="study/summary.py")
    except ownership.DataError as e:
        parser.exit(2, f"error: {e}\n")
    runs, notes = read_runs(args.runs)
    if not runs:  # no folder, no <run>/metrics.json in it, or none readable
        why = ""
        if len(notes) == 1:
            why = f" ({notes[0]})"
        if len(notes) > 1:
            why = f" ({notes[0]}; and {len(notes) - 1} more)"
        parser.exit(
            2,
            f"error: no readable run in {args.runs}{why}: train first, e.g. `python sound_only.py`, or "
            f"give the folder the scripts' --out pointed to\n",
        )
    summarize(args.runs, runs, notes)


if __name__ == "__main__":
    main()
