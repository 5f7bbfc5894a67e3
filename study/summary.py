"""The whole study at a glance: `python metrics.py runs/` prints the paper's Tables 2-5 from the saved runs, beside
the paper's numbers and the trivial baselines, names the runs still missing with the command that makes each,
and draws Figures 2 and 5-9 into runs/figures/ (study/figures.py).
"""
import argparse
import os

from metrics import PAPER, format_retrieval, format_row
from study.figures import write_figures
from study.runs import (PAPER_EPOCHS, TABLE_METRICS, backbone_name, find_dataset, read_runs, run_command,
                        study_source)

TABLE_CAPTIONS = {2: "validation and test accuracy of the sound network",
                  3: "accuracy, precision, recall and F1 of the visual network",
                  4: "validation and test accuracy of the FC_AGG network",
                  5: "accuracy, precision, recall and F1 of the TT_AGG network"}


def row_title(key, m):
    """The heading of one row of a paper table: backbone (and loss, in Table 3); a missing run's command; a
    run trained for other than the paper's 30 epochs says so, since its numbers are not comparable."""
    script, backbone, weighted = key
    title = backbone_name(backbone)
    if script == "visual_only":
        title += ", weighted loss" if weighted else ", unweighted loss"
    if m is None:
        return f"{title}: not run yet, make it with `{run_command(*key)}`"
    epochs = m.get("args", {}).get("epochs") if isinstance(m.get("args"), dict) else None
    if isinstance(epochs, int) and epochs != PAPER_EPOCHS:
        title += f" ({epochs} epoch{'' if epochs == 1 else 's'}; the paper trains {PAPER_EPOCHS})"
    return title


def format_table(number, runs, source):
    """The lines of Table `number` laid out as the paper's: its rows in the paper's order, each a block of
    format_row (this run, the paper's number, the trivial baseline on our data), one header for all."""
    names = TABLE_METRICS[number]
    lines = []
    for key in [k for k, p in PAPER.items() if p["table"] == number]:
        m = runs.get(key)
        block = format_row(row_title(key, m), m and m["val"], m and m["test"], PAPER[key],
                           m and m["baseline"], names)
        if not lines:
            lines = [f"Table {number}: {TABLE_CAPTIONS[number]} ({source}; the paper's: Greatest Hits)",
                     *block[1:3]]
        lines += [block[0], *block[3:]]
    return lines


def summarize(folder, runs, notes):
    """Print the study read from `folder` (notes, Tables 2-5, Figure 8 in numbers, missing runs) and write
    the figures into folder/figures."""
    source, source_notes = study_source(runs)
    dataset, data_notes = find_dataset(runs, folder)
    study = [*PAPER, ("retrieve", "resnet", False)]  # the ten training runs and the paper's retrieval
    missing = [key for key in study if key not in runs]
    print(f"The study in {folder}: {len(study) - len(missing)} of {len(study)} runs, {source}")
    for note in notes + source_notes + data_notes:
        print(f"note: {note}")
    for number in TABLE_METRICS:
        print("\n" + "\n".join(format_table(number, runs, source)))
    for key in [k for k in sorted(runs) if k[0] == "retrieve"]:
        print("\n" + "\n".join(format_retrieval(runs[key], source)))
    if missing:
        print(f"\nMissing runs ({len(missing)}): make them with\n" +
              "\n".join(f"  {run_command(*key)}" for key in missing) +
              f"\nthen run `python metrics.py {folder}` again.")
    paths = write_figures(runs, dataset, source, os.path.join(folder, "figures"))
    print(f"\nFigures 2, 5, 6, 7, 8, 9 written to {os.path.join(folder, 'figures')}/: " +
          ", ".join(os.path.basename(p) for p in paths))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="The whole study at a glance: print the paper's Tables 2-5 from the saved runs, beside the "
                    "paper's numbers and the trivial baselines, name the runs still missing with the command "
                    "that makes each, and draw Figures 2, 5, 6, 7, 8 and 9 as PNGs into RUNS/figures/.")
    parser.add_argument("runs", nargs="?", default="runs",
                        help="the folder the scripts saved their runs in, one <script>-<backbone>[-weighted]/"
                             "metrics.json each (default: %(default)s)")
    args = parser.parse_args(argv)
    runs, notes = read_runs(args.runs)
    if not runs:  # no folder, no <run>/metrics.json in it, or none readable
        why = f" ({notes[0]}" + (f"; and {len(notes) - 1} more" if len(notes) > 1 else "") + ")" if notes else ""
        parser.exit(2, f"error: no readable run in {args.runs}{why}: train first, e.g. `python sound_only.py`, or "
                       f"give the folder the scripts' --out pointed to\n")
    summarize(args.runs, runs, notes)
