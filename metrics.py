"""How results are counted and shown: metrics, trivial baselines, the paper's numbers, the table row.

Every script counts with these functions, so that numbers in different tables mean the same thing.
- `accuracy`: share of correct single-label predictions (Tables 2 and 4).
- `binary_scores`: accuracy, precision, recall and F1 over every entry of a boolean prediction. For the
  visual network's 17 outputs this is the paper's count, "the percentage of correctly predicted outputs"
  over all label entries (3.3.2), with precision/recall/F1 pooled over all entries (micro-averaged);
  for the two-tower model it is the usual binary score over image-sound pairs (Table 5).
- `confusion_matrix` (Figure 5), `coappearance` (Figure 6).
- Ranking (retrieve.py, Figure 8): `rank`, `precision_at_k`, `average_precision`, `recall_at_k`,
  `first_relevant_rank`, and what a random ranking scores on each; `retrieval_scores`, all of them for one
  retrieval, and `per_material`.
- Trivial baselines: majority class, all-negative, chance.
- `print_row`: one results row in the paper's table layout, beside the paper's own row and the baseline
  (retrieval's table, over one run or several seeds, is `format_retrieval_table`); retrieve.py's printout
  and figures (`format_retrieval`, `precision_at_k_figure` with Figure 8's band `draw_precision_at_k`, which
  the study's summary draws too, `top_sheet_figure`, `per_material_figure`).

A whole study's Tables 2-5 and Figures 2, 5-9 are `python study/summary.py runs/`.
"""

import math
import resource
import signal
import statistics
import sys

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import torch

    import backbones
    import data
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

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
TABLE_K = [1, 5, 10, 25, 50]  # the K of precision@K in the printed table (and retrieve.py's --k itself)
RECALL_K = [1, 5, 10]  # the K of recall@K of the own recording
MATERIAL_K = 10  # the K of the per-material precision@K
# What retrieve.py's --help prints under its flags: the ranking metrics below and their tie rule.
RETRIEVAL_DEFINITIONS = """\
Each query ranks a library of N items by cosine similarity. An item is relevant ("good", paper 4.4.1) when
the sound's material is among the frame's labels. "Random" is the expectation of a uniformly random ranking.
  precision@K   share of relevant items among the top K; random: the share r/N of relevant items in the
                library (for every K)
  AP, mAP       AP: the mean of precision@rank over the ranks of a query's relevant items; mAP: the mean
                over queries (a query with no relevant item left out and counted); random: the exact
                expected AP, (r-1)/(N-1) + (N-r)/(N(N-1)) * (1 + 1/2 + ... + 1/N), for r relevant of N
  R@K           recall@K of the own recording: share of queries with at least one item of their own video
                (an image's ten sounds; a sound's frame) in the top K; random: 1 - C(N-r, K)/C(N, K), r own
                items; only measured when the own video is in the library (not with --exclude-own-video or
                --library train)
  median rank   of each query's first own item (1 = first), median over queries (the mean of the two middle
                values for an even count); random: the median of a random ranking's first own rank, the
                smallest m with P(rank <= m) >= 1/2 (what the median over many queries tends to). Also the
                mean rank; random: (N+1)/(r+1)
  per material  precision@10 and AP of the queries of each material, beside random AP: an image counts
                toward each material it shows, a sound toward its one material
Ties are pessimistic: among equal similarities the non-relevant items rank first, so the result does not
depend on the library's order and a constant similarity scores the worst possible, below random."""


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


def confusion_figure(matrix, names, title):
    """A confusion matrix as a figure (paper Figure 5), for a PNG: rows true class, columns predicted,
    row-normalised."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = draw_confusion(ax, matrix, names, title)
    fig.colorbar(im, ax=ax, label="share of the true class's clips")
    fig.tight_layout()
    return fig


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


def retrieval_scores(similarity, relevant, own, query, k):
    """Every metric of one retrieval (retrieve.py). similarity, relevant, own (Q, N), own[q, n]: item n is
    from query q's own video; query: the position of the single query shown (the paper's view). Returns:
    - the precision@K curves, K = 1..k ("single": that query, "mean" and "std" over the queries, "random");
    - the table {row: {"single", "all", "std", "random"}}, "all" over every query (the mean; the median for
      "median rank"), "std" its spread where it means something;
    - the number of queries without a relevant item;
    - per query: precision@MATERIAL_K, AP, random AP.
    """
    n = relevant.shape[1]
    precision = precision_at_k(similarity, relevant, k).cpu()  # (Q, k)
    ap = average_precision(similarity, relevant).cpu()  # (Q,), NaN: undefined
    random_precision = relevant.float().mean(1).mean().item()  # for every K
    random_ap = torch.tensor([random_average_precision(n, r) for r in relevant.sum(1).tolist()])  # (Q,)
    curves = {
        "single": precision[query].tolist(),
        "mean": precision.mean(0).tolist(),
        "std": precision.std(0, correction=0).tolist(),  # the spread of these queries (defined for one too)
        "random": [random_precision] * k,
    }

    def row(single, values, random, spread=True):
        return {
            "single": float(single),
            "all": values.mean().item(),
            "std": values.std(correction=0).item() if spread else None,
            "random": float(random),
        }

    table = {
        f"precision@{K}": row(precision[query, K - 1], precision[:, K - 1], random_precision)
        for K in sorted({K for K in TABLE_K + [k] if K <= k})
    }
    defined = ~ap.isnan()  # AP is undefined for a query with no relevant item: left out of mAP, and counted
    table["mAP"] = row(ap[query], ap[defined], random_ap[defined].mean())
    if own.any(1).all():  # every query's own video is in its library: recall@K of the own recording
        first = first_relevant_rank(similarity, own).double().cpu()  # (Q,)
        r = int(own[0].sum())  # the same for every query: an image's ten sounds, a sound's one frame
        for K in [K for K in RECALL_K if K <= n]:
            table[f"R@{K}"] = row(
                first[query] <= K, (first <= K).double(), random_recall_at_k(n, r, K), False
            )
        random_mean, random_median = random_first_rank(n, r)
        table["median rank"] = {
            **row(first[query], first, random_median, False),
            "all": first.quantile(0.5).item(),
        }  # an even count: the two middle ones' mean
        table["mean rank"] = row(first[query], first, random_mean, False)
    material_precision = precision_at_k(similarity, relevant, min(MATERIAL_K, n))[:, -1].cpu()  # (Q,)
    return curves, table, int((~defined).sum()), (material_precision, ap, random_ap)


def per_material(query_materials, material_precision, ap, random_ap):
    """P@MATERIAL_K, AP (mean over the queries where defined) and random AP averaged over the queries of each
    material; query_materials (Q, 17) bool, so an image showing several materials counts toward each."""
    return [
        {
            "material": name,
            "queries": int(of.sum()),
            "precision": material_precision[of].mean().item(),
            "ap": ap[of].nanmean().item(),
            "random_ap": random_ap[of].nanmean().item(),
        }
        for name, of in zip(data.MATERIALS, query_materials.cpu().T, strict=True)
        if of.any()
    ]


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
# What retrieve.py prints and draws: its printout, Figure 8, the top five, per material
# ----------------------------------------------------------------------------------------------------------


def format_per_material(m):
    """The per-material table: queries, precision@K, AP and random AP for each query material."""
    counted = "a sound counts toward its material"
    if m["direction"] == "image-to-sound":
        counted = "an image counts toward each material it shows"
    lines = [
        f"Per query material ({counted}; AP: mean over its queries with a relevant item)",
        f"{'material':<13}{'queries':>8}{'P@' + str(m['per_material_k']):>8}{'AP':>8}{'random AP':>11}",
    ]
    for r in m["per_material"]:
        ap = number_or_dash(r["ap"])
        random_ap = number_or_dash(r["random_ap"])
        lines.append(f"{r['material']:<13}{r['queries']:>8}{r['precision']:>8.3f}{ap:>8}{random_ap:>11}")
    return lines


def number_or_dash(x):
    """'0.123', or '-' for NaN: AP is undefined when none of a material's queries has a relevant item."""
    if math.isnan(x):
        return "-"
    return f"{x:.3f}"


def library_words(m):
    """'all, 240 sounds, the query's own video included', as the figures say it."""
    if m["library"] == "train":
        return f"train, {m['library_size']} sounds, none from a test video"
    item = DIRECTIONS[m["direction"]][1]
    own = "left out" if m["exclude_own_video"] else "included"
    return f"{m['library']}, {m['library_size']} {item}s, the query's own video {own}"


def where(x):
    """A query or an item of json as its video, and its clip for a sound: 'toy-0-0021 clip 0'."""
    return x["video_id"] + (f" clip {x['clip']}" if "clip" in x else "")


def format_retrieval(m, source):
    """retrieve.py's printout: the single query's top items, the retrieval table beside random retrieval (and
    the paper's words), and the per-material table."""
    query_kind, item_kind = DIRECTIONS[m["direction"]]
    q = m["query"]
    top = f"its top {len(m['top5'])} {item_kind}s"
    lines = [f"query: test {query_kind} {where(q)} ({', '.join(q['labels'])}); {top}:"]
    for hit in m["top5"]:
        good = "good" if hit["good"] else "not good"
        own = "  (own video)" if hit["video_id"] == q["video_id"] else ""
        lines.append(
            f"  {hit['rank']}. {hit.get('material') or ', '.join(hit['labels']):<20} {good:<9} {where(hit)}  "
            f"cosine {hit['similarity']:.3f}{own}"
        )
    lines += format_retrieval_table([m], source_name(source))
    if query_kind == "image":
        lines.append(f"paper (one test image, ResNet): {PAPER_FIGURE_8}")
    return lines + format_per_material(m)


def draw_precision_at_k(ax, mean, std, label, band_label):
    """Figure 8's curve on `ax`: the mean share of good items in the top K, K = 1.., (K,) tensors `mean` and
    `std`, with a band of ± one std (clipped to [0, 1]) where `std` is not None. retrieve.py draws it over
    the test queries, the study's summary over seeds."""
    k = torch.arange(1, len(mean) + 1)
    if std is not None:
        ax.fill_between(
            k,
            (mean - std).clamp(0, 1),
            (mean + std).clamp(0, 1),
            color="tab:blue",
            alpha=0.2,
            label=band_label,
        )
    ax.plot(k, mean, color="tab:blue", label=label)


def precision_at_k_figure(m, source):
    """retrieve.py's precision_at_k.png: Figure 8's curve for the single query, beside the mean ± std over
    every test query and random retrieval."""
    from matplotlib.ticker import MaxNLocator

    query, item = DIRECTIONS[m["direction"]]
    k = torch.arange(1, m["k"] + 1)
    mean = torch.tensor(m["mean"])  # (k,) over the test queries
    std = torch.tensor(m["std"])
    single = f"one test {query} ({m['query']['video_id']}: {', '.join(m['query']['labels'])})"
    if query == "image":
        single += ", as in the paper"
    fig, ax = pyplot().subplots(figsize=(9, 6), layout="constrained")
    draw_precision_at_k(
        ax,
        mean,
        std,
        f"mean over the {m['queries']} test {query}s (mAP {m['table']['mAP']['all']:.3f})",
        f"± std over the {m['queries']} test {query}s",
    )
    ax.plot(
        k,
        m["single"],
        color="tab:orange",
        marker=".",
        label=single,
    )
    ax.plot(k, m["random"], color="0.4", linestyle="--", label=f"random retrieval (mean over test {query}s)")
    ax.set(
        xlim=(0.5, m["k"] + 0.5),
        ylim=(-0.02, 1.02),  # a curve at 0 stays visible above the axis
        xlabel=f"K ({item}s retrieved)",
        ylabel=f"share of good {item}s in the top K",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # K counts items: no K = 2.5
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize=9)  # below the axes: never over a curve
    title = f"share of good {item}s in the top K"
    if query == "image":
        title = "Figure 8: " + title
    ax.set_title(
        f"{title}, {backbones.BACKBONES[m['backbone']]} TT_AGG, {source_name(source)}\nlibrary: "
        f"{library_words(m)}; good: the sound's material is in the frame",
        fontsize=10,
    )
    return fig


def top_sheet_figure(m, pictures):
    """retrieve.py's top5_sheet.png: the query, then its five best items, framed green when good and red
    when not. pictures: the query's and the items', each a frame (3, S, S) uint8 or a spectrogram
    (1, H, W)."""
    plt = pyplot()
    query, item = DIRECTIONS[m["direction"]]
    q = m["query"]
    shows = "material"
    if query == "image":
        shows = "shows"
    titles = [(f"query: {where(q)}\n{shows}: {', '.join(q['labels'])}", "black")]
    for h in m["top5"]:
        own = " (own video)" if h["video_id"] == q["video_id"] else ""
        verdict = "not good"
        color = "tab:red"
        if h["good"]:
            verdict = "good"
            color = "tab:green"
        what = h.get("material") or ", ".join(h["labels"])
        titles.append(
            (f"{h['rank']}. {what}: {verdict}\n{where(h)}{own}\ncosine {h['similarity']:.3f}", color)
        )
    fig, axes = plt.subplots(1, len(pictures), figsize=(2.9 * len(pictures), 3.6), layout="constrained")
    for ax, picture, (title, color) in zip(axes, pictures, titles, strict=True):
        if len(picture) == 3:  # a frame
            ax.imshow(picture.permute(1, 2, 0).cpu().numpy())
        else:  # a spectrogram, one second wide
            ax.imshow(
                picture[0].cpu().numpy(),
                origin="lower",
                aspect="auto",
                cmap="magma",
                extent=(0, 1, 0, picture.shape[-2]),
            )
            ax.set_xlabel("time (s); mel frequency up", fontsize=8)
        ax.set_title(title, fontsize=9, color=color)
        ax.set(yticks=[], xticks=[] if len(picture) == 3 else [0, 1])
        if color != "black":
            plt.setp(list(ax.spines.values()), color=color, linewidth=3)
    fig.suptitle(
        f"Top {len(pictures) - 1} {item}s for one test {query}, {backbones.BACKBONES[m['backbone']]} "
        f"TT_AGG (library: {library_words(m)})\ngreen: the sound's material is in the frame (good), "
        f"red: it is not",
        fontsize=10,
    )
    return fig


def per_material_figure(m):
    """retrieve.py's per_material.png: precision@K and AP per query material, random AP marked beside them."""
    query = DIRECTIONS[m["direction"]][0]
    rows = m["per_material"]
    y = torch.arange(len(rows)).float()
    fig, ax = pyplot().subplots(figsize=(8, 1.5 + 0.35 * len(rows)), layout="constrained")
    ax.barh(
        y - 0.2,
        [r["precision"] for r in rows],
        0.4,
        color="tab:blue",
        label=f"precision@{m['per_material_k']}",
    )
    ax.barh(y + 0.2, [r["ap"] for r in rows], 0.4, color="tab:orange", label="AP")
    ax.plot([r["random_ap"] for r in rows], y + 0.2, "k|", markersize=12, label="random AP")
    ax.set_yticks(y, [f"{r['material']} ({r['queries']})" for r in rows])
    ax.invert_yaxis()  # Table 1's order, top to bottom
    ax.set(
        xlim=(0, 1),
        xlabel="mean over the test queries of the material",
        ylabel=f"query material (number of test {query}s)",
    )
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=3, fontsize=9)  # below the axes: never over a bar
    ax.set_title(
        f"Retrieval per material, {query} queries, {backbones.BACKBONES[m['backbone']]} TT_AGG\n"
        f"library: {library_words(m)}",
        fontsize=10,
    )
    return fig


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
}  # Student's t, the 97.5% quantile, by degrees of freedom


def t95(df):
    """The 97.5% quantile of Student's t with `df` degrees of freedom: the table above, then the expansion
    in 1 / df around the normal's 1.95996 (Cornish-Fisher; within 0.001 of the exact value from df = 10 on,
    where 1.96 alone would make an interval at ten degrees of freedom 12% too narrow)."""
    if df in T95:
        return T95[df]
    z = 1.959964
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def mean_interval(values):
    """(mean, half-width of the 95% interval of the mean, n) of `values`, e.g. one paired difference per
    seed: Student's t with n - 1 degrees of freedom; half-width None below two."""
    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return mean, None, n
    sd = statistics.stdev(values)  # the sample standard deviation (n - 1)
    return mean, t95(n - 1) * sd / math.sqrt(n), n


if __name__ == "__main__":  # the summary's old command, which a user may have in their notes
    raise SystemExit("`python metrics.py runs/` is now `python study/summary.py runs/`: run that instead")
