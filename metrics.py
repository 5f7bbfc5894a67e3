"""How results are counted and shown: metrics, trivial baselines, the paper's numbers, the table row.

Every script counts with these functions, so that numbers in different tables mean the same thing.
- `accuracy`: share of correct single-label predictions (Tables 2 and 4).
- `binary_scores`: accuracy, precision, recall and F1 over every entry of a boolean prediction. For the
  visual network's 17 outputs this is the paper's count, "the percentage of correctly predicted outputs"
  over all label entries (3.3.2), with precision/recall/F1 pooled over all entries (micro-averaged);
  for the two-tower model it is the usual binary score over image-sound pairs (Table 5).
- `confusion_matrix` (Figure 5), `coappearance` (Figure 6), `precision_at_k` (Figure 8).
- Trivial baselines: majority class, all-negative, chance.
- `print_row`: one results row in the paper's table format, beside the paper's own row and the baseline.
- The whole study at a glance, from the saved runs: `python metrics.py runs/` prints Tables 2-5 beside the
  paper's and draws Figures 2 and 5-9 into runs/figures/ (the last section of this file).
"""
import argparse
import glob
import json
import os
import tempfile

import torch

# The paper's numbers, by (script, backbone, weighted). Tables 2-5 of the paper.
PAPER = {
    ("sound_only", "resnet", False): {"table": 2, "val": {"accuracy": 0.9449}, "test": {"accuracy": 0.5501}},
    ("sound_only", "vgg", False): {"table": 2, "val": {"accuracy": 0.7978}, "test": {"accuracy": 0.5450}},
    ("visual_only", "resnet", False): {"table": 3,
        "val": {"accuracy": 0.8148, "precision": 0.4081, "recall": 0.9665, "f1": 0.5739},
        "test": {"accuracy": 0.7623, "precision": 0.2899, "recall": 0.7107, "f1": 0.4118}},
    ("visual_only", "resnet", True): {"table": 3,
        "val": {"accuracy": 0.8148, "precision": 0.4026, "recall": 0.8996, "f1": 0.5563},
        "test": {"accuracy": 0.7728, "precision": 0.3018, "recall": 0.6954, "f1": 0.4209}},
    ("visual_only", "vgg", False): {"table": 3,
        "val": {"accuracy": 0.7918, "precision": 0.3557, "recall": 0.9518, "f1": 0.5179},
        "test": {"accuracy": 0.7580, "precision": 0.2898, "recall": 0.7437, "f1": 0.4171}},
    ("visual_only", "vgg", True): {"table": 3,
        "val": {"accuracy": 0.7661, "precision": 0.3265, "recall": 0.9407, "f1": 0.4847},
        "test": {"accuracy": 0.7363, "precision": 0.2707, "recall": 0.7792, "f1": 0.4018}},
    ("fc_agg", "resnet", False): {"table": 4, "val": {"accuracy": 0.9526}, "test": {"accuracy": 0.5425}},
    ("fc_agg", "vgg", False): {"table": 4, "val": {"accuracy": 0.9066}, "test": {"accuracy": 0.5480}},
    ("tt_agg", "resnet", False): {"table": 5,
        "val": {"accuracy": 0.8040, "precision": 0.7563, "recall": 0.8959, "f1": 0.8202},
        "test": {"accuracy": 0.7124, "precision": 0.6897, "recall": 0.8048, "f1": 0.7428}},
    ("tt_agg", "vgg", False): {"table": 5,
        "val": {"accuracy": 0.6634, "precision": 0.6424, "recall": 0.7536, "f1": 0.6936},
        "test": {"accuracy": 0.5460, "precision": 0.5305, "recall": 0.8019, "f1": 0.6385}},
}
PAPER_FIGURE_8 = "the top 25 sounds all good, the share of good sounds no lower than about 75% up to K = 50"


# ----------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------

def accuracy(pred, target):
    """Share of positions where the predicted class equals the target class."""
    return (pred == target).float().mean().item()


def binary_scores(pred, target):
    """Accuracy, precision, recall, F1 over every entry of boolean tensors of the same shape.

    Precision (recall) is 0 when nothing is predicted (present) positive, as scikit-learn's zero_division=0.
    """
    pred, target = pred.bool().flatten(), target.bool().flatten()
    tp = (pred & target).sum().item()
    fp = (pred & ~target).sum().item()
    fn = (~pred & target).sum().item()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (pred == target).float().mean().item(), "precision": precision, "recall": recall,
            "f1": f1}


def confusion_matrix(pred, target, num_classes):
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    return torch.bincount(target.flatten() * num_classes + pred.flatten(),
                          minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def coappearance(image_labels):
    """(17, 17) counts of frames showing both materials i and j (paper Figure 6); the diagonal counts frames
    showing material i at all. `image_labels` is (V, 17) bool."""
    x = image_labels.float().cpu()
    return (x.T @ x).long()


def precision_at_k(good):
    """`good` (Q, L) bool: row q says, in ranked order, whether each retrieved item is good for query q.
    Returns (Q, L) float: entry [q, k-1] is the share of good items among the top k (paper Figure 8)."""
    k = torch.arange(1, good.shape[1] + 1, device=good.device)
    return good.float().cumsum(1) / k


# ----------------------------------------------------------------------------------------------------------
# Trivial baselines: what a model that learned nothing scores on the same examples
# ----------------------------------------------------------------------------------------------------------

def majority_baseline(train_target, target):
    """Always predict the most common training class (Tables 2 and 4)."""
    majority = torch.bincount(train_target.flatten()).argmax()
    return {"name": f"majority class ({majority.item()})", "accuracy": accuracy(torch.full_like(target, majority),
                                                                               target)}


def all_negative_baseline(target):
    """Predict every label absent (Table 3): high accuracy on sparse labels, zero recall."""
    return {"name": "all negative", **binary_scores(torch.zeros_like(target, dtype=torch.bool), target)}


def chance_baseline(target):
    """Expected scores of a fair coin per entry (Table 5's balanced pairs): accuracy 0.5, recall 0.5,
    precision the share of positives."""
    p = target.float().mean().item()
    f1 = 2 * p * 0.5 / (p + 0.5) if p else 0.0
    return {"name": "chance (coin flip)", "accuracy": 0.5, "precision": p, "recall": 0.5, "f1": f1}


# ----------------------------------------------------------------------------------------------------------
# Showing results
# ----------------------------------------------------------------------------------------------------------

def format_row(title, val, test, paper, baseline, names):
    """The lines of one results row in the paper's table layout: validation and test columns, our numbers,
    the paper's, and the trivial baseline (on our test set; its validation numbers on our validation set)."""
    w, group = 30, 11 * len(names) - 1
    heads = " ".join(f"{n[:10]:>10}" for n in names)
    lines = [title, f"{'':<{w}} | {'validation':^{group}} | {'test':^{group}}", f"{'':<{w}} | {heads} | {heads}"]

    def cells(d):
        return " ".join(f"{d[n]:>10.4f}" if d and n in d else f"{'-':>10}" for n in names)

    lines.append(f"{'this run':<{w}} | {cells(val)} | {cells(test)}")
    if paper:
        lines.append(f"{'paper':<{w}} | {cells(paper['val'])} | {cells(paper['test'])}")
    if baseline:
        lines.append(f"{'baseline: ' + baseline['test']['name']:<{w}} | {cells(baseline['val'])} | "
                     f"{cells(baseline['test'])}")
    return lines


def print_row(title, val, test, paper, baseline, names):
    print("\n".join(format_row(title, val, test, paper, baseline, names)), flush=True)


def write_json(obj, path):
    """JSON to a temporary file, then rename: never a half-written metrics.json."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); a run's results are for every reader
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def peak_memory_mb(device):
    """The most memory this run has held: on CUDA the tensors' peak on the GPU, on the CPU the process's peak
    resident size (which includes Python and the libraries, about 0.5 GB before any data)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10  # Linux reports KiB


def pyplot():
    """matplotlib's pyplot on the Agg backend: PNG files only, no display needed (servers, tests)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path):
    """Write a figure as a PNG through a temporary file and a rename (never a half-written PNG), close it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", pad_inches=0.15)  # whatever sticks out is kept, not cut
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a figure is for everyone who may read
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        pyplot().close(fig)


def draw_confusion(ax, matrix, names, title, name_rows=True, name_columns=True):
    """Draw a confusion matrix on `ax`: rows true class, columns predicted, row-normalised (so rare classes
    show as clearly as common ones). Ticks read "ID name" where asked, else the ID alone (Table 1). A material
    with no clips in the set gets a grey row: white would read as "never predicted right".
    Returns the image, for a colour bar."""
    m = torch.as_tensor(matrix).float()
    clips = m.sum(1, keepdim=True)  # (17, 1) clips of each true material
    rates = (m / clips.clamp(min=1)).masked_fill(clips == 0, float("nan"))
    cmap = pyplot().get_cmap("Blues").with_extremes(bad="0.85")
    im = ax.imshow(rates.numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")  # crisp cells
    ids = [str(i) for i in range(len(names))]
    full = [f"{i} {n}" for i, n in enumerate(names)]
    ax.set_xticks(range(len(names)), full if name_columns else ids, rotation=90 if name_columns else 0,
                  fontsize=8)
    ax.set_yticks(range(len(names)), full if name_rows else ids, fontsize=8)
    ax.set_xlabel("predicted material")
    ax.set_ylabel("true material" + (" (grey: no clips in this set)" if (clips == 0).any() else ""))
    ax.set_title(title, fontsize=10)
    return im


def save_confusion_png(matrix, names, title, path):
    """A confusion matrix as a PNG (paper Figure 5): rows true class, columns predicted, row-normalised."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = draw_confusion(ax, matrix, names, title)
    fig.colorbar(im, ax=ax, label="share of the true class's clips")
    fig.tight_layout()
    save_png(fig, path)


def format_confusion(matrix):
    """A compact text confusion matrix: counts, rows true class, columns predicted, IDs as in Table 1."""
    n = matrix.shape[0]
    lines = ["true\\pred " + "".join(f"{j:>4}" for j in range(n))]
    for i in range(n):
        lines.append(f"{i:>9} " + "".join(f"{int(c):>4}" if c else "   ." for c in matrix[i].tolist()))
    return lines


# ----------------------------------------------------------------------------------------------------------
# The whole study at a glance: `python metrics.py runs/` -> Tables 2-5 printed, Figures 2, 5-9 as PNGs
# ----------------------------------------------------------------------------------------------------------
# Everything here reads what the scripts saved -- the run folder is the contract (DESIGN.md) -- plus, for
# Figures 2 and 6, which count examples rather than results, the dataset file the runs were trained on.

PAPER_EPOCHS = 30  # paper 3.3: every model trained for 30 epochs
TABLE_METRICS = {2: ["accuracy"], 3: ["accuracy", "precision", "recall", "f1"], 4: ["accuracy"],
                 5: ["accuracy", "precision", "recall", "f1"]}
TABLE_CAPTIONS = {2: "validation and test accuracy of the sound network",
                  3: "accuracy, precision, recall and F1 of the visual network",
                  4: "validation and test accuracy of the FC_AGG network",
                  5: "accuracy, precision, recall and F1 of the TT_AGG network"}
RETRIEVE_COMMAND = "python retrieve.py --k 50"  # retrieve.py's run folder is runs/retrieve-<backbone>/
SOURCE_NAMES = {"toy": "toy data", "greatest-hits": "Greatest Hits data"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
FIGURES = {2: "figure2_class_distribution.png", 5: "figure5_confusion.png", 6: "figure6_coappearance.png",
           7: "figure7_sound_vs_fc_agg.png", 8: "figure8_precision_at_k.png", 9: "figure9_tt_agg_vs_visual.png"}


def run_name(script, backbone, weighted=False):
    """The run folder's name, as the scripts write it: <script>-<backbone>[-weighted]."""
    return f"{script}-{backbone}" + ("-weighted" if weighted else "")


def run_command(script, backbone, weighted=False):
    """The command that makes a run of the study, with the paper's defaults."""
    if script == "retrieve":
        return RETRIEVE_COMMAND + ("" if backbone == "resnet" else f" --run runs/tt_agg-{backbone}")
    return f"python {script}.py --backbone {backbone}" + (" --weighted" if weighted else "")


def backbone_name(backbone):
    """'resnet' -> 'ResNet-18', as the scripts print it (backbones.py is imported only here: torchvision)."""
    import backbones
    return backbones.BACKBONES.get(backbone, backbone)


def study_backbones():
    """The backbones of the study, in the paper's order: ResNet, then VGG."""
    import backbones
    return list(backbones.BACKBONES)


def source_name(source):
    """A dataset's source as titles say it: 'toy' -> 'toy data', 'greatest-hits' -> 'Greatest Hits data'."""
    return SOURCE_NAMES.get(source, f"{source} data")


# ----- reading the runs -----------------------------------------------------------------------------------

def run_key(m):
    """(script, backbone, weighted): the key of a run in PAPER and in the summary's dict of runs."""
    return m["script"], m["backbone"], bool(m.get("weighted", False))


def is_numbers(x):
    """Whether `x` is a non-empty JSON list of numbers."""
    return isinstance(x, list) and len(x) > 0 and all(isinstance(v, (int, float)) for v in x)


def check_run(m):
    """None when `m` (a parsed metrics.json) holds what the summary reads, else a short reason why not.
    Checked up front so that the tables and figures can read a run without guarding every key."""
    if not isinstance(m, dict) or not isinstance(m.get("script"), str) or not isinstance(m.get("backbone"), str):
        return "not a run's metrics (no script and backbone)"
    if m["script"] == "retrieve":
        return None if is_numbers(m.get("single")) and is_numbers(m.get("mean")) else \
            "lacks the precision@K lists 'single' and 'mean'"
    if run_key(m) not in PAPER:
        return f"{run_name(*run_key(m))} is not one of the paper's runs (Tables 2-5)"
    names = TABLE_METRICS[PAPER[run_key(m)]["table"]]
    baseline = m.get("baseline") if isinstance(m.get("baseline"), dict) else {}
    for where, d in [("val", m.get("val")), ("test", m.get("test")), ("baseline val", baseline.get("val")),
                     ("baseline test", baseline.get("test"))]:
        if not isinstance(d, dict) or not all(isinstance(d.get(n), (int, float)) for n in names):
            return f"'{where}' lacks {', '.join(names)}"
    if not isinstance(baseline["test"].get("name"), str):
        return "the baseline has no name"
    curves = m.get("curves")
    if not isinstance(curves, list) or not all(isinstance(c, dict) and "epoch" in c and
                                               all(f"val_{n}" in c for n in names) for c in curves):
        return f"'curves' lack epoch and val_{', val_'.join(names)}"
    if m["script"] in ("sound_only", "fc_agg"):
        rows = m.get("test_confusion")
        if not (isinstance(rows, list) and rows and all(is_numbers(r) and len(r) == len(rows) for r in rows)):
            return "'test_confusion' is not a square matrix"
    return None


def read_runs(folder):
    """Every readable run in `folder`: ({(script, backbone, weighted): metrics}, [lines on what was skipped]).

    A run is a subfolder with a metrics.json. One that cannot be read, or lacks what the summary needs, is
    named and left out: one broken run should not hide the others. When two folders hold the same run (a
    copy, a renamed folder), the one with the scripts' folder name is used and the other named.
    """
    runs, notes = {}, []
    for path in sorted(glob.glob(os.path.join(folder, "*", "metrics.json"))):
        try:
            with open(path) as f:
                m = json.load(f)
        except (OSError, ValueError) as e:
            notes.append(f"skipped {path}: not readable JSON ({e})")
            continue
        problem = check_run(m)
        if problem:
            notes.append(f"skipped {path}: {problem}")
            continue
        m["folder"] = os.path.dirname(path)
        key = run_key(m)
        if key in runs:
            keep, drop = sorted([runs[key], m], key=lambda r: os.path.basename(r["folder"]) != run_name(*key))
            notes.append(f"{drop['folder']} holds the same run as {keep['folder']}: using {keep['folder']}")
            m = keep
        runs[key] = m
    return runs, notes


def study_source(runs):
    """The runs' data as titles say it ('toy data', 'Greatest Hits data'), and a note when they mix sources."""
    sources = sorted({m.get("source", "unknown") for m in runs.values()})
    if len(sources) == 1:
        return source_name(sources[0]), []
    return "mixed data", [f"the runs were trained on different sources ({', '.join(sources)}): the tables "
                          f"and figures mix them"]


def find_dataset(runs, runs_folder):
    """The dataset dict the runs were trained on, for Figures 2 and 6: (dataset or None, notes).

    Taken from the runs' args["data"] (None: the default toy dataset, built as the scripts would if it is
    gone). A relative path is tried from here, then from the folder above the runs (where the scripts ran).
    When the runs disagree, the dataset most runs used is shown and the disagreement said.
    """
    import data
    used = {}
    for key, m in sorted((k, m) for k, m in runs.items() if k in PAPER):  # the training runs
        args = m.get("args") if isinstance(m.get("args"), dict) else {}
        used.setdefault(args.get("data"), []).append(os.path.basename(m["folder"]))
    if not used:
        return None, ["Figures 2 and 6 need the dataset, named by a training run: there is none yet"]
    path = max(used, key=lambda p: len(used[p]))
    notes = []
    if len(used) > 1:
        notes.append("the runs used different datasets: " + "; ".join(
            f"{p or 'the default toy dataset'} ({', '.join(names)})" for p, names in used.items())
            + f". Figures 2 and 6 show {path or 'the default toy dataset'}")
    candidates = [path] if path is not None else [data.toy_path(**data.TOY_DEFAULTS)]
    if not os.path.isabs(candidates[0]):
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(runs_folder)), candidates[0]))
    found = next((p for p in candidates if os.path.exists(p)), candidates[0])
    try:
        if path is None and not os.path.exists(found):
            data.load(None, torch.device("cpu"))  # builds the default toy dataset (deterministic: the same one)
        return data.read_dataset(found), notes
    except data.DataError as e:
        return None, notes + [f"Figures 2 and 6 need the dataset: {e}"]


# ----- the tables -----------------------------------------------------------------------------------------

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


def format_retrieval(m, source):
    """Figure 8 in numbers: precision@K of one query, the mean +- std over test images and random retrieval,
    at the K the paper talks about."""
    single, mean, std, random = m["single"], m["mean"], m.get("std"), m.get("random")
    ks = sorted({k for k in [1, 5, 10, 25, 50, len(single)] if k <= len(single)})
    query = m.get("query") if isinstance(m.get("query"), dict) else {}

    def cells(values):
        if isinstance(values, (int, float)):  # one number for every K
            values = [values] * len(single)
        return "".join(f"{values[k - 1]:>8.3f}" if is_numbers(values) and k <= len(values) else f"{'-':>8}"
                       for k in ks)
    w = 34
    return [f"Figure 8 in numbers: share of good sounds in the top K, {backbone_name(m['backbone'])} TT_AGG "
            f"({source}; library {m.get('library', '?')}, the query's own video "
            f"{'left out' if m.get('exclude_own_video') else 'included'})",
            f"{'K':<{w}}" + "".join(f"{k:>8}" for k in ks),
            f"{'one test image (' + str(query.get('video_id', '?')) + ')':<{w}}" + cells(single),
            f"{'mean over test images':<{w}}" + cells(mean),
            f"{'std over test images':<{w}}" + cells(std),
            f"{'random retrieval':<{w}}" + cells(random),
            f"paper (one test image, ResNet): {PAPER_FIGURE_8}"]


# ----- the figures ----------------------------------------------------------------------------------------

def say_missing(ax, text):
    """An empty panel that says what is missing and how to make it, in place of a plot."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, transform=ax.transAxes, wrap=True)


def figure_class_distribution(d, path):
    """Figure 2: the share of hits per material in train, validation and test (bars side by side)."""
    import data
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 5), layout="constrained")
    for i, (split, code) in enumerate(data.SPLITS.items()):
        mats = d["clip_materials"][d["split"] == code].flatten()
        share = torch.bincount(mats, minlength=data.NUM_MATERIALS).float() / max(len(mats), 1)
        ax.bar(torch.arange(data.NUM_MATERIALS) + (i - 1) * 0.27, share.numpy(), width=0.27,
               label=f"{SPLIT_NAMES[split]} ({len(mats) // data.CLIPS_PER_VIDEO} videos, {len(mats)} hits)")
    ax.set_xticks(range(data.NUM_MATERIALS), [f"{i} {n}" for i, n in enumerate(data.MATERIALS)], rotation=45,
                  ha="right", fontsize=9)
    ax.set_xlabel("material (ID as in Table 1)")
    ax.set_ylabel("share of the split's hits")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=9, frameon=False)  # above the bars
    fig.suptitle(f"Figure 2: distribution of material IDs in train, validation and test, "
                 f"{source_name(d['source'])}")
    save_png(fig, path)


def figure_confusion(runs, source, path):
    """Figure 5: test confusion matrices, sound only (top row) and FC_AGG (bottom row), one column per
    backbone. Class names on the outer edges only, IDs inside, so that four panels stay readable."""
    import data
    plt = pyplot()
    rows = [("sound_only", "sound only"), ("fc_agg", "FC_AGG")]
    columns = study_backbones()  # both, always, as in the paper: a missing run is named in its panel
    fig, axes = plt.subplots(2, len(columns), figsize=(6.5 * len(columns) + 1.5, 13), layout="constrained",
                             squeeze=False)
    im = None
    for r, (script, label) in enumerate(rows):
        for c, backbone in enumerate(columns):
            m, ax = runs.get((script, backbone, False)), axes[r][c]
            if m is None:
                say_missing(ax, f"{label}, {backbone_name(backbone)}: not run yet\n\n"
                                f"{run_command(script, backbone)}")
                continue
            im = draw_confusion(ax, m["test_confusion"], data.MATERIALS,
                                f"{label}, {backbone_name(backbone)}: test accuracy {m['test']['accuracy']:.3f}",
                                name_rows=c == 0, name_columns=r == 1)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.5, label="share of the true class's test clips")
    fig.suptitle(f"Figure 5: confusion matrices on the test set, sound only (top) and FC_AGG (bottom), "
                 f"{source}\nrows: true material, columns: predicted; IDs as in Table 1")
    save_png(fig, path)


def figure_coappearance(d, path):
    """Figure 6: how many training frames show both materials i and j. The diagonal (frames showing i at all)
    is printed but left out of the colour scale, which it would otherwise swamp."""
    import data
    from matplotlib.ticker import MaxNLocator
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
                dark = i != j and counts[i, j] > 0.6 * top
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black", fontweight="bold" if i == j else "normal")
    names = [f"{i} {n}" for i, n in enumerate(data.MATERIALS)]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("material (diagonal, grey: training frames showing the material at all)")
    ax.set_ylabel("material")
    bar = fig.colorbar(im, ax=ax, shrink=0.8, label="training frames showing both materials")
    bar.locator = MaxNLocator(integer=True)  # counts of frames: no 0.25 ticks on a small dataset
    bar.update_ticks()
    fig.suptitle(f"Figure 6: co-appearances of materials in the training frames, {source_name(d['source'])}")
    save_png(fig, path)


def plot_curves(axes_by_metric, runs, backbone, series, missing):
    """Draw each series' validation curve per metric on its axes, and the paper's final value as a star at
    epoch 30 (also for a run not made yet: the target stays visible); list the missing runs in `missing`."""
    for script, weighted, label, color in series:
        m = runs.get((script, backbone, weighted))
        if m is None:
            missing.append(f"{label}: not run yet, {run_command(script, backbone, weighted)}")
        for metric, ax in axes_by_metric.items():
            ax.plot([PAPER_EPOCHS], [PAPER[(script, backbone, weighted)]["val"][metric]], color=color,
                    marker="*", markersize=12, linestyle="none")
            if m is not None:
                ax.plot([c["epoch"] for c in m["curves"]], [c[f"val_{metric}"] for c in m["curves"]], color=color,
                        marker=".")


def curve_legend(fig, series, extra=()):
    """One legend for all panels, below them (never over a curve); colours are the same in every panel."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=color, marker=".", label=label) for _, _, label, color in series]
    handles.append(Line2D([], [], color="0.3", marker="*", markersize=12, linestyle="none",
                          label=f"the paper's final value (epoch {PAPER_EPOCHS}, Greatest Hits)"))
    fig.legend(handles=handles + list(extra), loc="outside lower center", ncol=min(len(handles) + len(extra), 4),
               fontsize=9)


def figure_curves(runs, source, path, number, series, names, title, baseline=None, note=None):
    """Figures 7 and 9: validation curves per epoch, one row per metric in `names`, one column per backbone.
    `baseline`, if given, labels a dashed line at the first series' trivial baseline on the validation set
    (Figure 7: the majority class; both of its models see the same clips, so one line serves both).
    `note`, if given, is a second line of the title."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    plt = pyplot()
    columns = study_backbones()  # both, always, as in the paper: a missing run is named in its panel
    fig, axes = plt.subplots(len(names), len(columns), figsize=(5.5 * len(columns) + 1, 3.6 * len(names) + 1.4),
                             layout="constrained", squeeze=False)
    drew_baseline = False
    for c, backbone in enumerate(columns):
        missing = []
        plot_curves({metric: axes[r][c] for r, metric in enumerate(names)}, runs, backbone, series, missing)
        first = next((runs[(s, backbone, w)] for s, w, _, _ in series if (s, backbone, w) in runs), None)
        for r, metric in enumerate(names):
            ax = axes[r][c]
            if baseline and first:
                ax.axhline(first["baseline"]["val"][metric], color="0.5", linestyle="--", linewidth=1)
                drew_baseline = True
            ax.set_ylim(-0.02, 1.02)  # a curve or baseline at 0 (the majority class often is, on toy data) shows
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
    fig.suptitle(f"Figure {number}: {title}, {source}" + (f"\n{note}" if note else ""))
    save_png(fig, path)


def figure_retrieval(runs, source, path):
    """Figure 8: share of good sounds among the top K retrieved, K = 1..k: one test image (the paper's view),
    the mean +- std over every test image, and random retrieval. One panel per retrieve run."""
    plt = pyplot()
    found = [runs[k] for k in sorted(runs) if k[0] == "retrieve"]
    fig, axes = plt.subplots(1, max(len(found), 1), figsize=(7 * max(len(found), 1), 6), layout="constrained",
                             squeeze=False)
    if not found:
        say_missing(axes[0][0], f"no retrieval run yet: {RETRIEVE_COMMAND}\n(after python tt_agg.py --backbone "
                                f"resnet)")
    for ax, m in zip(axes[0], found):
        plot_retrieval(ax, m)
    fig.suptitle(f"Figure 8: percentage of good sounds in the top K predictions, {source}\n"
                 f"a sound is good when its material is in the query frame's labels (paper 4.4.1)")
    save_png(fig, path)


def plot_retrieval(ax, m):
    """The curves of one retrieve run on `ax`; optional keys of its metrics.json are used when present."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter
    query = m.get("query") if isinstance(m.get("query"), dict) else {}
    labels = query.get("labels")
    about = f"{query.get('video_id', '?')}" + (f": {', '.join(map(str, labels))}" if isinstance(labels, list) else "")
    mean = torch.tensor(m["mean"], dtype=torch.float)
    k = torch.arange(1, len(mean) + 1)
    if is_numbers(m.get("std")) and len(m["std"]) == len(mean):
        std = torch.tensor(m["std"], dtype=torch.float)
        ax.fill_between(k, (mean - std).clamp(0, 1), (mean + std).clamp(0, 1), color="tab:blue", alpha=0.2,
                        label="mean ± std over test images")
    ax.plot(k, mean, color="tab:blue", label="mean over test images")
    ax.plot(range(1, len(m["single"]) + 1), m["single"], color="tab:orange", marker=".",
            label=f"one test image ({about})")
    random = m.get("random")
    if isinstance(random, (int, float)):
        ax.axhline(random, color="0.5", linestyle="--", label="random retrieval, mean over test images")
    elif is_numbers(random):
        ax.plot(range(1, len(random) + 1), random, color="0.5", linestyle="--",
                label="random retrieval, mean over test images")
    if isinstance(query.get("random"), (int, float)):
        ax.axhline(query["random"], color="tab:orange", linestyle=":", label="random retrieval, this image")
    ax.set_ylim(-0.02, 1.02)  # a curve at 0 (no good sound at K = 1) stays visible
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))  # the figure's title speaks of a percentage
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # K counts sounds
    ax.set_xlabel("K (sounds retrieved)")
    ax.set_ylabel("good sounds in the top K (% of K)")
    size = f" ({m['library_size']} sounds)" if isinstance(m.get("library_size"), int) else ""
    ax.set_title(f"{backbone_name(m['backbone'])} TT_AGG; library: {m.get('library', '?')}{size}; the query's "
                 f"own video {'left out' if m.get('exclude_own_video') else 'included'}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)  # below: never on a curve


def figure_placeholder(number, text, path):
    """A figure that could not be drawn says why, so that no stale PNG from an earlier summary is left."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
    say_missing(ax, text)
    fig.suptitle(f"Figure {number}: not drawn")
    save_png(fig, path)


def write_figures(runs, dataset, source, folder):
    """Figures 2 and 5-9 as PNGs in `folder`; returns their paths."""
    paths = {n: os.path.join(folder, name) for n, name in FIGURES.items()}
    if dataset is None:
        for n in (2, 6):
            figure_placeholder(n, "the dataset the runs used could not be read\n(see the summary's notes)", paths[n])
    else:
        figure_class_distribution(dataset, paths[2])
        figure_coappearance(dataset, paths[6])
    figure_confusion(runs, source, paths[5])
    figure_curves(runs, source, paths[7], 7, [("sound_only", False, "sound only", "tab:blue"),
                                              ("fc_agg", False, "FC_AGG", "tab:orange")],
                  ["accuracy"], "validation accuracy over training, sound only vs FC_AGG",
                  baseline="majority class (validation)")
    figure_retrieval(runs, source, paths[8])
    figure_curves(runs, source, paths[9], 9, [("tt_agg", False, "TT_AGG", "tab:green"),
                                              ("visual_only", False, "visual, unweighted loss", "tab:blue"),
                                              ("visual_only", True, "visual, weighted loss", "tab:purple")],
                  ["accuracy", "f1"], "validation accuracy and F1 over training, TT_AGG vs visual networks",
                  note="TT_AGG counts balanced image-sound pairs; the visual networks count all 17 labels of "
                       "each frame (mostly negatives)")
    return [paths[n] for n in sorted(paths)]


# ----- the command ----------------------------------------------------------------------------------------

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
    if not os.path.isdir(args.runs):
        parser.exit(2, f"error: no runs folder {args.runs}: train first (e.g. `python sound_only.py`), or give "
                       f"the folder the scripts' --out pointed to\n")
    if not glob.glob(os.path.join(args.runs, "*", "metrics.json")):
        parser.exit(2, f"error: {args.runs} holds no runs (no {args.runs}/<run>/metrics.json): train first, "
                       f"e.g. `python sound_only.py --backbone resnet`\n")
    runs, notes = read_runs(args.runs)
    if not runs:
        parser.exit(2, f"error: {args.runs} holds no readable runs: {notes[0]}"
                       + (f" (and {len(notes) - 1} more)" if len(notes) > 1 else "") + "\n")
    summarize(args.runs, runs, notes)


if __name__ == "__main__":
    main()
