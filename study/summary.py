"""The whole study at a glance: `python metrics.py runs/` prints the paper's Tables 2-5 from the saved runs, each
number as mean ± std over the seeds found, beside the paper's numbers and the trivial baselines; then the
paper's conclusions checked as paired differences over the seeds (study/claims.py); names the runs still
missing with the command that makes each, and draws Figures 2 and 5-9 into runs/figures/ (study/figures.py).
"""

import argparse
import math
import os

from data import DataError, atomic_folder, check_out
from metrics import PAPER, PAPER_FIGURE_8, format_retrieval_table
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
    study_source,
)

TABLE_CAPTIONS = {
    2: "validation and test accuracy of the sound network",
    3: "accuracy, precision, recall and F1 of the visual network",
    4: "validation and test accuracy of the FC_AGG network",
    5: "accuracy, precision, recall and F1 of the TT_AGG network",
}


def mean_std(values):
    """(mean, sample standard deviation; 0 for one value) of a list of numbers."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(
        values
    ) > 1 else 0.0


def cell(values):
    """One table cell: '0.6370' for one seed (or seeds that agree), '0.637 ± 0.020' for several, '-' for none."""
    if not values:
        return f"{'-':>13}"
    mean, std = mean_std(values)
    return f"{mean:>13.4f}" if max(values) == min(values) else f"{f'{mean:.3f} ± {std:.3f}':>13}"


def row_title(key, seeds):
    """The heading of one row of a paper table: backbone (and loss, in Table 3) and the number of seeds; a
    missing run's command; runs trained for other than the paper's 30 epochs say so (not comparable)."""
    script, backbone, weighted = key
    title = backbone_name(backbone)
    if script == "visual_only":
        title += ", weighted loss" if weighted else ", unweighted loss"
    if not seeds:
        return f"{title}: not run yet, make it with `{run_command(*key)}`"
    title += (
        f", mean ± std over {len(seeds)} seeds ({', '.join(map(str, sorted(seeds)))})"
        if len(seeds) > 1
        else f", one seed ({next(iter(seeds))})"
    )
    epochs = {m.get("args", {}).get("epochs") for m in seeds.values() if isinstance(m.get("args"), dict)}
    if epochs - {PAPER_EPOCHS}:
        title += (
            f" (trained {'/'.join(map(str, sorted(epochs, key=str)))} epoch{'s' * (epochs != {1})}; the "
            f"paper trains {PAPER_EPOCHS})"
        )
    return title


def format_table(number, runs, source):
    """The lines of Table `number` laid out as the paper's: its rows in the paper's order, each a block of our
    numbers (mean ± std over seeds), the paper's and the trivial baseline on our data."""
    names = TABLE_METRICS[number]
    w, group = 30, 14 * len(names) - 1
    heads = " ".join(f"{n[:13]:>13}" for n in names)
    lines = [
        f"Table {number}: {TABLE_CAPTIONS[number]} ({source}; the paper's: Greatest Hits)",
        f"{'':<{w}} | {'validation':^{group}} | {'test':^{group}}",
        f"{'':<{w}} | {heads} | {heads}",
    ]
    for key in [k for k, p in PAPER.items() if p["table"] == number]:
        seeds = runs.get(key, {})
        ms = [seeds[s] for s in sorted(seeds)]
        lines.append(row_title(key, seeds))

        def row(label, get):
            return f"{label:<{w}} | " + " | ".join(
                " ".join(cell([get(m, part)[n] for m in ms] if ms else []) for n in names)
                for part in ["val", "test"]
            )

        if ms:
            lines.append(row("ours", lambda m, part: m[part]))
        lines.append(
            f"{'paper':<{w}} | "
            + " | ".join(" ".join(f"{PAPER[key][part][n]:>13.4f}" for n in names) for part in ["val", "test"])
        )
        if ms:
            lines.append(
                row("baseline: " + ms[0]["baseline"]["test"]["name"], lambda m, part: m["baseline"][part])
            )
    return lines


def format_claims(runs):
    """The paper's conclusions, each with the toy's paired difference over seeds and a verdict."""
    w = 74
    lines = [
        "The paper's conclusions, checked: the difference per seed, its mean [95% interval of the mean] "
        "(seeds), and the verdict (study/claims.py says how it is reached)",
        f"{'claim (paper)':<{w}} {'compared':<46} {'difference':>26}  verdict",
    ]
    for claim, paper, kind, a, b, value, what in claims.claims([bb for bb in ("resnet", "vgg")]):
        diffs = claims.paired(runs, a, b, value)
        if not diffs:
            lines.append(f"{claim + ' (' + paper + ')':<{w}} {what:<46} {'runs missing or too short':>26}  -")
            continue
        mean, half, n = claims.interval(diffs)
        spread = f"[{mean - half:+.3f}, {mean + half:+.3f}]" if half is not None else "[no spread]"
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
    n = len(all_runs(runs))
    print(
        f"The study in {folder}: {n} run{'s' * (n != 1)}, seed{'s' * (len(seeds) != 1)} "
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
        print(
            f"\nMissing runs ({len(missing)}): make them with\n"
            + "\n".join(f"  {run_command(*key, seed)}" for key, seed in missing)
            + f"\n(or every seed's study at once: {STUDY_COMMAND})\nthen run `python metrics.py {folder}` again."
        )
    figures = os.path.join(folder, "figures")
    with atomic_folder(figures, "metrics.py") as staged:  # all the figures or none, in a folder of ours
        paths = write_figures(runs, dataset, source, staged)
    print(
        f"\nFigures 2, 5, 6, 7, 8, 9 written to {figures}/: " + ", ".join(os.path.basename(p) for p in paths)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="The whole study at a glance: print the paper's Tables 2-5 from the saved runs, beside the "
        "paper's numbers and the trivial baselines, name the runs still missing with the command "
        "that makes each, and draw Figures 2, 5, 6, 7, 8 and 9 as PNGs into RUNS/figures/."
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
        check_out(os.path.join(args.runs, "figures"), folder=True)
    except DataError as e:
        parser.exit(2, f"error: {e}\n")
    runs, notes = read_runs(args.runs)
    if not runs:  # no folder, no <run>/metrics.json in it, or none readable
        why = (
            f" ({notes[0]}" + (f"; and {len(notes) - 1} more" if len(notes) > 1 else "") + ")"
            if notes
            else ""
        )
        parser.exit(
            2,
            f"error: no readable run in {args.runs}{why}: train first, e.g. `python sound_only.py`, or "
            f"give the folder the scripts' --out pointed to\n",
        )
    summarize(args.runs, runs, notes)
