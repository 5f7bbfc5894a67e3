"""The paper's figures from a study's runs: Figures 2 and 5-9 as PNGs (`python study/summary.py runs/`).

Each figure shows both backbones, as the paper's do; a run not made yet is named in its panel with the command
that makes it, and a figure that cannot be drawn at all is replaced by one saying why, so that no stale PNG of
an earlier summary is left behind.
"""

import os

import torch
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter

import data
from metrics import PAPER, coappearance, draw_confusion, draw_precision_at_k, pyplot, source_name
from safe_files import ownership
from study.runs import PAPER_EPOCHS, RETRIEVE_COMMAND, backbone_name, is_numbers, run_command, study_backbones

SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
FIGURES = {
    2: "figure2_class_distribution.png",
    5: "figure5_confusion.png",
    6: "figure6_coappearance.png",
    7: "figure7_sound_vs_fc_agg.png",
    8: "figure8_precision_at_k.png",
    9: "figure9_tt_agg_vs_visual.png",
}


def say_missing(ax, text):
    """An empty panel that says what is missing and how to make it, in place of a plot."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, transform=ax.transAxes, wrap=True)


def figure_class_distribution(d, path):
    """Figure 2: the share of hits per material in train, validation and test (bars side by side)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 5), layout="constrained")
    for i, (split, code) in enumerate(data.SPLITS.items()):
        mats = d["clip_materials"][d["split"] == code].flatten()
        share = torch.bincount(mats, minlength=data.NUM_MATERIALS).float() / max(len(mats), 1)
        ax.bar(
            torch.arange(data.NUM_MATERIALS) + (i - 1) * 0.27,
            share.numpy(),
            width=0.27,
            label=f"{SPLIT_NAMES[split]} ({len(mats) // data.CLIPS_PER_VIDEO} videos, {len(mats)} hits)",
        )
    ax.set_xticks(
        range(data.NUM_MATERIALS),
        [f"{i} {n}" for i, n in enumerate(data.MATERIALS)],
        rotation=45,
        ha="right",
        fontsize=9,
    )
    ax.set_xlabel("material (ID as in Table 1)")
    ax.set_ylabel("share of the split's hits")
    ax.legend(
        loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=9, frameon=False
    )  # above the bars
    fig.suptitle(
        f"Figure 2: distribution of material IDs in train, validation and test, {source_name(d['source'])}"
    )
    ownership.save_png(fig, path)


def figure_confusion(runs, source, path):
    """Figure 5: test confusion matrices, sound only (top row) and FC_AGG (bottom row), one column per
    backbone. Class names on the outer edges only, IDs inside, so that four panels stay readable."""
    plt = pyplot()
    rows = [("sound_only", "sound only"), ("fc_agg", "FC_AGG")]
    columns = study_backbones()  # both, always, as in the paper: a missing run is named in its panel
    fig, axes = plt.subplots(
        2, len(columns), figsize=(6.5 * len(columns) + 1.5, 13), layout="constrained", squeeze=False
    )
    im = None
    for r, (script, label) in enumerate(rows):
        for c, backbone in enumerate(columns):
            ms = list(runs.get((script, backbone, False), {}).values())
            ax = axes[r][c]
            if not ms:
                say_missing(
                    ax, f"{label}, {backbone_name(backbone)}: not run yet\n\n{run_command(script, backbone)}"
                )
                continue
            matrix = torch.tensor([m["test_confusion"] for m in ms]).sum(0).tolist()  # summed over the seeds
            accuracy = torch.tensor([m["test"]["accuracy"] for m in ms])
            title = f"{label}, {backbone_name(backbone)}: test accuracy {accuracy.mean():.3f}"
            if len(ms) > 1:
                title += f" ± {accuracy.std():.3f} ({len(ms)} seeds, summed)"
            im = draw_confusion(ax, matrix, data.MATERIALS, title, name_rows=c == 0, name_columns=r == 1)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.5, label="share of the true class's test clips")
    fig.suptitle(
        f"Figure 5: confusion matrices on the test set, sound only (top) and FC_AGG (bottom), "
        f"{source}\nrows: true material, columns: predicted; IDs as in Table 1"
    )
    ownership.save_png(fig, path)


def figure_coappearance(d, path):
    """Figure 6: how many training frames show both materials i and j. The diagonal (frames showing i at all)
    is printed but left out of the colour scale, which it would otherwise swamp."""
    plt = pyplot()
    counts = coappearance(d["image_labels"][d["split"] == data.SPLITS["train"]])
    off = counts.float().masked_fill(torch.eye(len(counts), dtype=torch.bool), float("nan"))
    fig, ax = plt.subplots(figsize=(9, 8), layout="constrained")
    cmap = plt.get_cmap("Oranges").with_extremes(bad="0.85")  # the diagonal (NaN here) in grey
    top = max(float(off.nan_to_num(0).max()), 1)
    im = ax.imshow(off.numpy(), cmap=cmap, vmin=0, vmax=top, interpolation="nearest")
    for i in range(len(counts)):
        for j in range(len(counts)):
            if counts[i, j] or i == j:  # empty cells stay blank, so that the pairs that occur stand out
                color = "black"
                if i != j and counts[i, j] > 0.6 * top:  # a dark cell
                    color = "white"
                weight = "normal"
                if i == j:
                    weight = "bold"
                text = str(int(counts[i, j]))
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color, fontweight=weight)
    names = [f"{i} {n}" for i, n in enumerate(data.MATERIALS)]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("material (diagonal, grey: training frames showing the material at all)")
    ax.set_ylabel("material")
    bar = fig.colorbar(im, ax=ax, shrink=0.8, label="training frames showing both materials")
    bar.locator = MaxNLocator(integer=True)  # counts of frames: no 0.25 ticks on a small dataset
    bar.update_ticks()
    fig.suptitle(f"Figure 6: co-appearances of materials in the training frames, {source_name(d['source'])}")
    ownership.save_png(fig, path)


def plot_curves(axes_by_metric, runs, backbone, series, missing):
    """Draw each series' validation curve per metric on its axes -- the mean over the seeds, with a band from
    the lowest to the highest seed -- and the paper's final value as a star at epoch 30 (also for a run not
    made yet: the target stays visible); list the missing runs in `missing`."""
    for script, weighted, label, color in series:
        ms = list(runs.get((script, backbone, weighted), {}).values())
        if not ms:
            missing.append(f"{label}: not run yet, {run_command(script, backbone, weighted)}")
        for metric, ax in axes_by_metric.items():
            ax.plot(
                [PAPER_EPOCHS],
                [PAPER[(script, backbone, weighted)]["val"][metric]],
                color=color,
                marker="*",
                markersize=12,
                linestyle="none",
            )
            if ms:
                epochs = min(len(m["curves"]) for m in ms)  # seeds trained for as long
                values = torch.tensor(
                    [[c[f"val_{metric}"] for c in m["curves"][:epochs]] for m in ms]
                )  # (seeds, E)
                x = [c["epoch"] for c in ms[0]["curves"][:epochs]]
                ax.plot(x, values.mean(0), color=color, marker=".")
                if len(ms) > 1:
                    ax.fill_between(x, values.min(0).values, values.max(0).values, color=color, alpha=0.2)


def curve_legend(fig, series, extra=()):
    """One legend for all panels, below them (never over a curve); colours are the same in every panel."""
    handles = [
        Line2D([], [], color=color, marker=".", label=label + " (mean over seeds; band: lowest to highest)")
        for _, _, label, color in series
    ]
    handles.append(
        Line2D(
            [],
            [],
            color="0.3",
            marker="*",
            markersize=12,
            linestyle="none",
            label=f"the paper's final value (epoch {PAPER_EPOCHS}, Greatest Hits)",
        )
    )
    fig.legend(
        handles=handles + list(extra),
        loc="outside lower center",
        ncol=min(len(handles) + len(extra), 4),
        fontsize=9,
    )


def figure_curves(runs, source, path, number, series, names, title, baseline=None, note=None):
    """Figures 7 and 9: validation curves per epoch, one row per metric in `names`, one column per backbone.
    `baseline`, if given, labels a dashed line at the first series' trivial baseline on the validation set
    (Figure 7: the majority class; both of its models see the same clips, so one line serves both).
    `note`, if given, is a second line of the title."""
    plt = pyplot()
    columns = study_backbones()  # both, always, as in the paper: a missing run is named in its panel
    fig, axes = plt.subplots(
        len(names),
        len(columns),
        figsize=(5.5 * len(columns) + 1, 3.6 * len(names) + 1.4),
        layout="constrained",
        squeeze=False,
    )
    drew_baseline = False
    for c, backbone in enumerate(columns):
        missing = []
        plot_curves({metric: axes[r][c] for r, metric in enumerate(names)}, runs, backbone, series, missing)
        first = first_run(runs, backbone, series)
        for r, metric in enumerate(names):
            ax = axes[r][c]
            if baseline and first:
                ax.axhline(first["baseline"]["val"][metric], color="0.5", linestyle="--", linewidth=1)
                drew_baseline = True
            ax.set_ylim(
                -0.02, 1.02
            )  # a curve or baseline at 0 (the majority class often is, on toy data) shows
            ax.set_xlim(left=0)  # from the start of training, also in a panel with only the paper's stars
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # ticks on 30
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"validation {'F1' if metric == 'f1' else metric}")
            ax.set_title(backbone_name(backbone), fontsize=10)
            ax.grid(alpha=0.3)
        if missing:  # under the column's heading: inside the panel the text would cover early, low curves
            axes[0][c].set_title("\n".join([backbone_name(backbone), *missing]), fontsize=9)
    extra = [Line2D([], [], color="0.5", linestyle="--", label=baseline)] if drew_baseline else []
    curve_legend(fig, series, extra)
    suptitle = f"Figure {number}: {title}, {source}"
    if note:
        suptitle += f"\n{note}"
    fig.suptitle(suptitle)
    ownership.save_png(fig, path)


def first_run(runs, backbone, series):
    """The first run found of the first series that has one (for the baseline line), or None."""
    for script, weighted, _, _ in series:
        seeds = runs.get((script, backbone, weighted))
        if seeds:
            return next(iter(seeds.values()))
    return None


def figure_retrieval(runs, source, path):
    """Figure 8: share of good sounds among the top K retrieved, K = 1..k: one test image (the paper's view),
    the mean +- std over every test image, and random retrieval. One panel per retrieve run."""
    plt = pyplot()
    found = [[seeds[s] for s in sorted(seeds)] for k, seeds in sorted(runs.items()) if k[0] == "retrieve"]
    fig, axes = plt.subplots(
        1, max(len(found), 1), figsize=(7 * max(len(found), 1), 6), layout="constrained", squeeze=False
    )
    if not found:
        say_missing(
            axes[0][0],
            f"no retrieval run yet: {RETRIEVE_COMMAND}\n(after python tt_agg.py --backbone resnet)",
        )
    for ax, ms in zip(axes[0], found, strict=False):  # no run: one panel, saying so
        plot_retrieval(ax, ms)
    fig.suptitle(
        f"Figure 8: percentage of good sounds in the top K predictions, {source}\n"
        f"a sound is good when its material is in the query frame's labels (paper 4.4.1)"
    )
    ownership.save_png(fig, path)


def plot_retrieval(ax, ms):
    """The curves of one backbone's retrieve runs (one per seed) on `ax`: the mean over the test images,
    averaged over the seeds, with a band of ± one std (over the seeds when there are several, else over the
    test images); the first seed's single query (the paper's view). Optional keys of metrics.json are used if
    present."""
    m = ms[0]
    query = m.get("query")
    if not isinstance(query, dict):
        query = {}
    labels = query.get("labels")
    about = f"{query.get('video_id', '?')}"
    if isinstance(labels, list):
        about += f": {', '.join(map(str, labels))}"
    length = min(len(r["mean"]) for r in ms)
    means = torch.tensor([r["mean"][:length] for r in ms], dtype=torch.float)  # (seeds, K)
    mean = means.mean(0)
    std = None  # the band: over the seeds, else over the test images, else none (an older run)
    over = None
    if len(ms) > 1:
        std = means.std(0)
        over = f"{len(ms)} seeds"
    elif is_numbers(m.get("std")) and len(m["std"]) >= length:
        std = torch.tensor(m["std"][:length], dtype=torch.float)
        over = "test images"
    mean_label = "mean over test images"
    single_label = f"one test image ({about})"
    if len(ms) > 1:
        mean_label += f", {len(ms)} seeds"
        single_label = f"one test image ({about}, seed {m.get('trained_seed', 0)})"
    draw_precision_at_k(ax, mean, std, mean_label, f"± std over {over}")
    ax.plot(range(1, len(m["single"]) + 1), m["single"], color="tab:orange", marker=".", label=single_label)
    plot_random(ax, m, query)
    ax.set_ylim(-0.02, 1.02)  # a curve at 0 (no good sound at K = 1) stays visible
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))  # the figure's title speaks of a percentage
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # K counts sounds
    ax.set_xlabel("K (sounds retrieved)")
    ax.set_ylabel("good sounds in the top K (% of K)")
    size = ""
    if isinstance(m.get("library_size"), int):
        size = f" ({m['library_size']} sounds)"
    own = "included"
    if m.get("exclude_own_video"):
        own = "left out"
    library = f"{m.get('library', '?')}{size}"
    ax.set_title(
        f"{backbone_name(m['backbone'])} TT_AGG; library: {library}; the query's own video {own}", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)  # below: never on a curve


def plot_random(ax, m, query):
    """What random retrieval scores, on `ax`: over the test images (one value, or a curve over K, by the
    version of metrics.json) and for the single query, where the run recorded them."""
    random = m.get("random")
    if isinstance(random, (int, float)):
        ax.axhline(random, color="0.5", linestyle="--", label="random retrieval, mean over test images")
    elif is_numbers(random):
        ax.plot(
            range(1, len(random) + 1),
            random,
            color="0.5",
            linestyle="--",
            label="random retrieval, mean over test images",
        )
    if isinstance(query.get("random"), (int, float)):
        ax.axhline(query["random"], color="tab:orange", linestyle=":", label="random retrieval, this image")


def figure_placeholder(number, text, path):
    """A figure that could not be drawn says why, so that no stale PNG from an earlier summary is left."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
    say_missing(ax, text)
    fig.suptitle(f"Figure {number}: not drawn")
    ownership.save_png(fig, path)


def write_figures(runs, dataset, source, folder):
    """Figures 2 and 5-9 as PNGs in `folder`; returns their paths."""
    paths = {n: os.path.join(folder, name) for n, name in FIGURES.items()}
    if dataset is None:
        for n in (2, 6):
            figure_placeholder(
                n, "the dataset the runs used could not be read\n(see the summary's notes)", paths[n]
            )
    else:
        figure_class_distribution(dataset, paths[2])
        figure_coappearance(dataset, paths[6])
    figure_confusion(runs, source, paths[5])
    figure_curves(
        runs,
        source,
        paths[7],
        7,
        [("sound_only", False, "sound only", "tab:blue"), ("fc_agg", False, "FC_AGG", "tab:orange")],
        ["accuracy"],
        "validation accuracy over training, sound only vs FC_AGG",
        baseline="majority class (validation)",
    )
    figure_retrieval(runs, source, paths[8])
    figure_curves(
        runs,
        source,
        paths[9],
        9,
        [
            ("tt_agg", False, "TT_AGG", "tab:green"),
            ("visual_only", False, "visual, unweighted loss", "tab:blue"),
            ("visual_only", True, "visual, weighted loss", "tab:purple"),
        ],
        ["accuracy", "f1"],
        "validation accuracy and F1 over training, TT_AGG vs visual networks",
        note="TT_AGG counts balanced image-sound pairs; the visual networks count all 17 labels of "
        "each frame (mostly negatives)",
    )
    return [paths[n] for n in sorted(paths)]
