"""How results are counted and shown: metrics, trivial baselines, the paper's numbers, the table row.

Every script counts with these functions, so that numbers in different tables mean the same thing.
- `accuracy`: share of correct single-label predictions (Tables 2 and 4).
- `binary_scores`: accuracy, precision, recall and F1 over every entry of a boolean prediction. For the
  visual network's 17 outputs this is the paper's count, "the percentage of correctly predicted outputs"
  over all label entries (3.3.2), with precision/recall/F1 pooled over all entries (micro-averaged);
  for the two-tower model it is the usual binary score over image-sound pairs (Table 5).
- `confusion_matrix` (Figure 5), `coappearance` (Figure 6).
- Ranking (retrieve.py, Figure 8): `rank`, `precision_at_k`, `average_precision`, `recall_at_k`,
  `first_relevant_rank`, and what a random ranking scores on each.
- Trivial baselines: majority class, all-negative, chance.
- `print_row`: one results row in the paper's table layout, beside the paper's own row and the baseline
  (retrieval's table, over one run or several seeds, is `format_retrieval_table`).

`python metrics.py runs/` (a whole study's Tables 2-5 and Figures 2, 5-9) hands over to study/summary.py.
"""

import json
import math
import resource
import statistics

import torch

import backbones
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
DIRECTIONS = {"image-to-sound": ("image", "sound"), "sound-to-image": ("sound", "image")}  # (query, item)
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


def test_interval(pred, target, video, name, draws=2000, seed=0):
    """The 95% interval of one score of this test split, from the sampling of its videos: the videos are drawn
    with replacement `draws` times, each draw scored, and the 2.5th and 97.5th percentiles kept (a percentile
    bootstrap). Videos, not examples, are drawn, since the pairs or clips of one video share a frame and a
    recording and are not independent of each other.

    `pred`, `target`: boolean tensors as `binary_scores` takes them, `name` one of its scores; for a single
    label's accuracy pass `pred == target` and a `target` of all True. `video`: the video of each entry.
    Returns {"name", "low", "high", "videos", "draws"}; seeded, so a run repeats it to the last digit.
    """
    pred, target = pred.bool().flatten().cpu(), target.bool().flatten().cpu()
    _, video = torch.unique(video.flatten().cpu(), return_inverse=True)  # 0 .. G-1
    groups = int(video.max()) + 1
    kind = (
        2 * pred.long() + target.long()
    )  # 0 true negative, 1 false negative, 2 false positive, 3 true positive
    counts = torch.zeros(groups, 4, dtype=torch.float64)
    counts.index_put_((video, kind), torch.ones(len(kind), dtype=torch.float64), accumulate=True)  # (G, 4)
    pick = torch.randint(groups, (draws, groups), generator=torch.Generator().manual_seed(seed))  # (draws, G)
    tn, fn, fp, tp = counts[pick].sum(1).unbind(1)  # (draws,) each: the counts of each draw
    precision = torch.where(tp + fp > 0, tp / (tp + fp), 0.0)
    recall = torch.where(tp + fn > 0, tp / (tp + fn), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    scores = {"accuracy": (tp + tn) / (tp + tn + fp + fn), "precision": precision, "recall": recall, "f1": f1}
    low, high = torch.quantile(scores[name], torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {"name": name, "low": low, "high": high, "videos": groups, "draws": draws}


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


def format_row(title, val, test, paper, baseline, names, interval=None):
    """The lines of one results row in the paper's table layout: validation and test columns, our numbers,
    the paper's, and the trivial baseline (on our test set; its validation numbers on our validation set);
    then, given a `test_interval`, the headline test score with its interval."""
    w = 30  # the row titles' width
    group = 11 * len(names) - 1  # the width of one column group: a 10-wide cell and a space per metric
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
    if interval:
        lines.append(format_interval(test, interval))
    return lines


def format_interval(test, interval):
    """One line: a run's headline test score and the 95% interval of its test split's sampling."""
    i = interval
    return (
        f"test {i['name']} {test[i['name']]:.4f}, 95% interval [{i['low']:.4f}, {i['high']:.4f}] "
        f"(bootstrap over the {i['videos']} test videos)"
    )


def print_row(title, val, test, paper, baseline, names, interval=None):
    print("\n".join(format_row(title, val, test, paper, baseline, names, interval)), flush=True)


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
    if name_columns:  # long names stand upright under the matrix
        ax.set_xticks(range(len(names)), full, rotation=90, fontsize=8)
    else:
        ax.set_xticks(range(len(names)), ids, fontsize=8)
    ax.set_yticks(range(len(names)), full if name_rows else ids, fontsize=8)
    ax.set_xlabel("predicted material")
    ylabel = "true material"
    if (clips == 0).any():
        ylabel += " (grey: no clips in this set)"
    ax.set_ylabel(ylabel)
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
# Ranking (retrieve.py, paper 4.4.1, Figure 8). Each metric takes similarity (Q, N), query q's score for
# library item n, and relevant (Q, N) bool; an item left out of a query's library is not among its N columns.
# ----------------------------------------------------------------------------------------------------------


def rank(similarity, relevant):
    """(Q, N) library positions in ranked order, most similar first.

    Ties are broken pessimistically: among equal similarities the non-relevant items come first. Every
    metric below then depends only on the similarities, not on the library's order, and a model cannot
    score well by giving many items the same similarity (a constant one ranks every relevant item last).
    """
    order = torch.argsort(relevant.int(), dim=1, stable=True)  # non-relevant first; the stable sort keeps it
    by_similarity = torch.argsort(similarity.gather(1, order), dim=1, descending=True, stable=True)
    return order.gather(1, by_similarity)


def precision_at_k(similarity, relevant, k):
    """Precision@K for K = 1..k: (Q, k) float, entry [q, K-1] the share of relevant items among query q's
    top K (paper Figure 8: the share of good sounds). Ranked by `rank`, ties pessimistic."""
    hits = relevant.gather(1, rank(similarity, relevant))[:, :k].float()  # (Q, k): relevance, best first
    return hits.cumsum(1) / torch.arange(1, k + 1, device=hits.device)


def average_precision(similarity, relevant):
    """Average precision: (Q,) float, for each query the mean of precision@rank over the ranks of its relevant
    items, so it rewards ranking every relevant item high, not only K of them; NaN for a query with no
    relevant item (undefined). Ranked by `rank`, ties pessimistic; with no ties it equals scikit-learn's
    average_precision_score."""
    hits = relevant.gather(1, rank(similarity, relevant)).float()  # (Q, N): relevance, best first
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1, device=hits.device)  # (Q, N) at each rank
    return (precision * hits).sum(1) / hits.sum(1)  # 0 / 0: NaN


def recall_at_k(similarity, relevant, k):
    """Recall@K as cross-modal retrieval counts it (one right answer per query, or a few: an image's own ten
    sounds): (Q,) bool, whether at least one relevant item is among the top K. Ties pessimistic."""
    return relevant.gather(1, rank(similarity, relevant))[:, :k].any(1)


def first_relevant_rank(similarity, relevant):
    """(Q,) int64: the rank (1 = most similar) of each query's first relevant item, N + 1 when it has none.
    Ties pessimistic."""
    hits = relevant.gather(1, rank(similarity, relevant))  # (Q, N)
    return torch.where(hits.any(1), hits.int().argmax(1) + 1, hits.shape[1] + 1)  # argmax: the first True


# What a uniformly random ranking of n items, r of them relevant, scores: the random baselines.


def random_average_precision(n, r):
    """The exact expected AP: the item at rank i is relevant with probability r/n, and then the other r - 1
    fill the i - 1 ranks above it at rate (r-1)/(n-1), so E[AP] = 1/n sum_i (1 + (i-1)(r-1)/(n-1)) / i
    = (r-1)/(n-1) + (n-r)/(n(n-1)) H_n, H_n = 1 + 1/2 + ... + 1/n. Above the common approximation r/n when r
    is small (a random ranking may still put a relevant item first). NaN when r = 0, like AP."""
    if r == 0:
        return float("nan")
    if n == 1:
        return 1.0  # one item, and it is relevant
    return (r - 1) / (n - 1) + (n - r) / (n * (n - 1)) * sum(1 / i for i in range(1, n + 1))


def random_recall_at_k(n, r, k):
    """Probability that at least one of the r relevant items is in the top k: 1 - C(n-r, k) / C(n, k)."""
    return 1 - math.comb(n - r, k) / math.comb(n, k)


def random_first_rank(n, r):
    """(mean, median) of the first relevant item's rank: mean (n+1)/(r+1); median the smallest m with
    P(rank <= m) = 1 - C(n-m, r)/C(n, r) >= 1/2."""
    mean = (n + 1) / (r + 1)
    median = next(m for m in range(1, n + 1) if 2 * math.comb(n - m, r) <= math.comb(n, r))
    return mean, median


def format_retrieval_table(ms, source=None):
    """The retrieval table of metrics.json dicts `ms` (one per seed of the towers) as lines, each row beside
    random retrieval. One run: the single query and the value over every test query ± its spread; several:
    the mean ± std (sample std, n - 1) over the runs of each run's value over every test query."""
    m = ms[0]
    several = len(ms) > 1
    query, item = DIRECTIONS[m.get("direction", "image-to-sound")]
    title = f"Retrieval, {query} -> {item}: {backbones.BACKBONES.get(m['backbone'], m['backbone'])} TT_AGG"
    if source:
        title += f" ({source})"
    title += (
        f"; library {m.get('library', '?')} ({m.get('library_size')} {item}s), the query's own video "
        f"{'left out' if m.get('exclude_own_video') else 'included'}; "
        f"{m.get('queries', m.get('test_images'))} test {query}s"
    )
    if several:
        title += f"; seeds {', '.join(str(x.get('trained_seed', '?')) for x in ms)}"
        single_head = ""
        head = f"mean ± std over {len(ms)} seeds"
    else:
        title += f"; one {query}: {m['query']['video_id']} ({', '.join(m['query']['labels'])})"
        single_head = f"one {query}"
        head = f"all {query}s (± std)"
    lines = [title, f"{'':<34}{single_head:>10}  {head:<28}{'random':>8}"]
    for name in m.get("table", {}):
        rows = [x.get("table", {}).get(name) for x in ms]
        if all(isinstance(r, dict) and "all" in r for r in rows):  # else a run without it, or an older table
            lines.append(format_retrieval_row(name, rows, item))
    without = [x.get("queries_without_relevant") or 0 for x in ms]
    if any(without):  # their AP is undefined; their precision@K is 0, and counted
        lines.append(
            f"mAP leaves out the {'/'.join(map(str, without))} test {query}s with no relevant {item} in "
            f"their library"
        )
    if not any(line.startswith("R@") for line in lines):
        lines.append(
            "R@K and ranks of the own recording: not measured, the query's own video is not in the library"
        )
    return lines


def format_retrieval_row(name, rows, item):
    """One row of the retrieval table: `rows` holds the row of each run ({"single", "all", "std", "random"}).
    One run: its single query and its value ± its spread over the queries; several: the mean ± std over the
    runs (the single query differs from run to run, so it is not shown)."""
    fmt = "{:.1f}" if name.endswith("rank") else "{:.3f}"
    values = [r["all"] for r in rows]
    label = name
    if name.startswith("R@"):
        label += " of the own recording"
    elif name.endswith("rank"):
        label += f" of the first own {item}"
    single = ""
    std = rows[0]["std"]  # None where a spread over the queries means nothing (R@K, ranks)
    if len(rows) > 1:
        std = statistics.stdev(values)
    elif name.startswith("R@"):
        single = "yes" if rows[0]["single"] else "no"
    else:
        single = fmt.format(rows[0]["single"])
    over = fmt.format(statistics.mean(values))
    if std is not None:
        over += " ± " + fmt.format(std)
    random = statistics.mean(r["random"] for r in rows)
    return f"{label:<34}{single:>10}  {over:<28}{fmt.format(random):>8}"


# ----------------------------------------------------------------------------------------------------------
# Over seeds: the 95% interval of a mean, for paired differences (the study's claims, the kit's comparisons)
# ----------------------------------------------------------------------------------------------------------

MIN_SEEDS = 3  # the fewest seeds whose interval is worth a verdict (two rest on one estimate of the spread)
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
}  # Student's t


def mean_interval(values):
    """(mean, half-width of the 95% interval of the mean, n) of `values`, e.g. one paired difference per
    seed: Student's t with n - 1 degrees of freedom (1.96 beyond ten values); half-width None below two."""
    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return mean, None, n
    sd = statistics.stdev(values)  # the sample standard deviation (n - 1)
    return mean, T95.get(n - 1, 1.96) * sd / math.sqrt(n), n


if __name__ == "__main__":
    # `python metrics.py runs/` is the summary's known command; study/ sits above this module and imports it,
    # so it is imported here, when metrics.py runs as a command, never when it is imported.
    from study import summary

    summary.main()
