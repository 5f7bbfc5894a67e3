"""How results are counted and shown: metrics, trivial baselines, the paper's numbers, the table row.

Every script counts with these functions, so that numbers in different tables mean the same thing.
- `accuracy`: share of correct single-label predictions (Tables 2 and 4).
- `binary_scores`: accuracy, precision, recall and F1 over every entry of a boolean prediction. For the
  visual network's 17 outputs this is the paper's count, "the percentage of correctly predicted outputs"
  over all label entries (3.3.2), with precision/recall/F1 pooled over all entries (micro-averaged);
  for the two-tower model it is the usual binary score over image-sound pairs (Table 5).
- `confusion_matrix` (Figure 5), `coappearance` (Figure 6); the retrieval metrics (Figure 8) are retrieve.py's.
- Trivial baselines: majority class, all-negative, chance.
- `print_row`: one results row in the paper's table layout, beside the paper's own row and the baseline
  (retrieval's table, over one run or several seeds, is retrieve.format_retrieval_table).

`python metrics.py runs/` (a whole study's Tables 2-5 and Figures 2, 5-9) hands over to study/summary.py.
"""

import json
import resource

import torch

import data

# The paper's numbers, by (script, backbone, weighted). Tables 2-5 of the paper.
PAPER = {
    ("sound_only", "resnet", False): {"table": 2, "val": {"accuracy": 0.9449}, "test": {"accuracy": 0.5501}},
    ("sound_only", "vgg", False): {"table": 2, "val": {"accuracy": 0.7978}, "test": {"accuracy": 0.5450}},
    ("visual_only", "resnet", False): {
        "table": 3,
        "val": {"accuracy": 0.8148, "precision": 0.4081, "recall": 0.9665, "f1": 0.5739},
        "test": {"accuracy": 0.7623, "precision": 0.2899, "recall": 0.7107, "f1": 0.4118},
    },
    ("visual_only", "resnet", True): {
        "table": 3,
        "val": {"accuracy": 0.8148, "precision": 0.4026, "recall": 0.8996, "f1": 0.5563},
        "test": {"accuracy": 0.7728, "precision": 0.3018, "recall": 0.6954, "f1": 0.4209},
    },
    ("visual_only", "vgg", False): {
        "table": 3,
        "val": {"accuracy": 0.7918, "precision": 0.3557, "recall": 0.9518, "f1": 0.5179},
        "test": {"accuracy": 0.7580, "precision": 0.2898, "recall": 0.7437, "f1": 0.4171},
    },
    ("visual_only", "vgg", True): {
        "table": 3,
        "val": {"accuracy": 0.7661, "precision": 0.3265, "recall": 0.9407, "f1": 0.4847},
        "test": {"accuracy": 0.7363, "precision": 0.2707, "recall": 0.7792, "f1": 0.4018},
    },
    ("fc_agg", "resnet", False): {"table": 4, "val": {"accuracy": 0.9526}, "test": {"accuracy": 0.5425}},
    ("fc_agg", "vgg", False): {"table": 4, "val": {"accuracy": 0.9066}, "test": {"accuracy": 0.5480}},
    ("tt_agg", "resnet", False): {
        "table": 5,
        "val": {"accuracy": 0.8040, "precision": 0.7563, "recall": 0.8959, "f1": 0.8202},
        "test": {"accuracy": 0.7124, "precision": 0.6897, "recall": 0.8048, "f1": 0.7428},
    },
    ("tt_agg", "vgg", False): {
        "table": 5,
        "val": {"accuracy": 0.6634, "precision": 0.6424, "recall": 0.7536, "f1": 0.6936},
        "test": {"accuracy": 0.5460, "precision": 0.5305, "recall": 0.8019, "f1": 0.6385},
    },
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
    return {
        "accuracy": (pred == target).float().mean().item(),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def confusion_matrix(pred, target, num_classes):
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    return (
        torch.bincount(target.flatten() * num_classes + pred.flatten(), minlength=num_classes * num_classes)
        .reshape(num_classes, num_classes)
        .cpu()
    )


def coappearance(image_labels):
    """(17, 17) counts of frames showing both materials i and j (paper Figure 6); the diagonal counts frames
    showing material i at all. `image_labels` is (V, 17) bool."""
    x = image_labels.float().cpu()
    return (x.T @ x).long()


# ----------------------------------------------------------------------------------------------------------
# Trivial baselines: what a model that learned nothing scores on the same examples
# ----------------------------------------------------------------------------------------------------------


def majority_baseline(train_target, target):
    """Always predict the most common training class (Tables 2 and 4)."""
    majority = torch.bincount(train_target.flatten()).argmax()
    return {
        "name": f"majority class ({majority.item()})",
        "accuracy": accuracy(torch.full_like(target, majority), target),
    }


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
# Showing and saving results
# ----------------------------------------------------------------------------------------------------------


def format_row(title, val, test, paper, baseline, names):
    """The lines of one results row in the paper's table layout: validation and test columns, our numbers,
    the paper's, and the trivial baseline (on our test set; its validation numbers on our validation set)."""
    w, group = 30, 11 * len(names) - 1
    heads = " ".join(f"{n[:10]:>10}" for n in names)
    lines = [
        title,
        f"{'':<{w}} | {'validation':^{group}} | {'test':^{group}}",
        f"{'':<{w}} | {heads} | {heads}",
    ]

    def cells(d):
        return " ".join(f"{d[n]:>10.4f}" if d and n in d else f"{'-':>10}" for n in names)

    lines.append(f"{'this run':<{w}} | {cells(val)} | {cells(test)}")
    if paper:
        lines.append(f"{'paper':<{w}} | {cells(paper['val'])} | {cells(paper['test'])}")
    if baseline:
        lines.append(
            f"{'baseline: ' + baseline['test']['name']:<{w}} | {cells(baseline['val'])} | "
            f"{cells(baseline['test'])}"
        )
    return lines


def print_row(title, val, test, paper, baseline, names):
    print("\n".join(format_row(title, val, test, paper, baseline, names)), flush=True)


def source_name(source):
    """A dataset's source as titles say it: 'toy' -> 'toy data', 'greatest-hits' -> 'Greatest Hits data'."""
    return {"toy": "toy data", "greatest-hits": "Greatest Hits data"}.get(source, f"{source} data")


def write_json(obj, path):
    """JSON through data.atomic_write: never a half-written metrics.json."""
    text = json.dumps(obj, indent=1) + "\n"  # fails here, before any file is made, on what JSON cannot hold
    data.atomic_write(path, lambda f: f.write(text.encode()))


def peak_memory_mb(device):
    """The most memory this run has held: on CUDA the tensors' peak on the GPU, on the CPU the process's peak
    resident size (which includes Python and the libraries, about 0.5 GB before any data)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB


def pyplot():
    """matplotlib's pyplot on the Agg backend: PNG files only, no display needed (servers, tests)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path):
    """Write a figure as a PNG through data.atomic_write (never a half-written PNG), then close it."""
    try:  # bbox "tight": whatever sticks out of the axes (long tick labels, a legend below) is kept, not cut
        data.atomic_write(
            path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
        )
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
    ax.set_xticks(
        range(len(names)), full if name_columns else ids, rotation=90 if name_columns else 0, fontsize=8
    )
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


if __name__ == "__main__":
    from study import summary  # `python metrics.py runs/`: the study summary, kept under its known name

    summary.main()
