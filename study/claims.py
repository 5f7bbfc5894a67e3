"""The paper's conclusions, checked on the study's runs: each a paired difference over seeds, with a verdict.

A claim compares two runs trained with the same seed (the same data, the same initial draw of everything the
seed decides), so a difference per seed, then the mean and a 95% interval of the mean over the seeds
(Student's t with n - 1 degrees of freedom: wide with 3 seeds, as it should be). The verdict:
- "A above B": holds when the whole interval is above 0, does not hold when it is below 0, else within noise;
- "A level with B": does not hold when the interval excludes 0, holds when it lies within +-LEVEL, else
  within noise (the seeds cannot tell);
- "at least x": as "above", for the value minus x.
A verdict needs MIN_SEEDS seeds or more: with two, the interval rests on one estimate of the spread
(t = 12.7), and two seeds that happen to agree give an interval of width zero, which says nothing. Below
it, the line says "too few seeds" and how many a verdict needs.
"""

from metrics import MIN_SEEDS, mean_interval

LEVEL = 0.05  # "level": a difference of less than 5 points of accuracy


def verdict(values, kind):
    """'holds', 'does not hold' or 'within noise' for differences `values` (one per seed) and kind
    'above', 'below' or 'level'."""
    mean, half, n = mean_interval(values)
    if n < MIN_SEEDS:
        return f"too few seeds ({n}; a verdict needs {MIN_SEEDS})"
    lo, hi = mean - half, mean + half
    if kind == "below":
        lo, hi = -hi, -lo
    if kind == "level":
        if lo > 0 or hi < 0:
            return "does not hold"
        if -LEVEL <= lo and hi <= LEVEL:
            return "holds"
        return "within noise"
    if lo > 0:
        return "holds"
    if hi < 0:
        return "does not hold"
    return "within noise"


def at_epoch(epoch, name):
    """The validation `name` after `epoch` epochs (the curve's entry; None for a shorter run)."""
    return lambda m: next((c[f"val_{name}"] for c in m["curves"] if c["epoch"] == epoch), None)


def at_test(name):
    """The test `name` of a training run."""
    return lambda m: m["test"][name]


def lowest_precision_above(share, k):
    """The lowest mean precision@K over the test images for K = 1..k (retrieve.py's metrics.json), less
    `share`: above 0 when the curve never falls under it."""
    return lambda m: min(m["mean"][:k]) - share


def paired(runs, a, b, value):
    """[value(run a) - value(run b)] over the seeds both runs have (b None: value(run a) alone); a seed whose
    runs lack the value (too few epochs) is left out."""
    seeds = sorted(set(runs.get(a, {})) & (set(runs.get(b, {})) if b else set(runs.get(a, {}))))
    pairs = [(value(runs[a][s]), value(runs[b][s]) if b else 0.0) for s in seeds]
    return [x - y for x, y in pairs if x is not None and y is not None]


def claims(backbones):
    """[(claim, paper, kind, run a, run b, value function, what is compared)], in the paper's order."""
    out = []
    for bb in backbones:
        sound = ("sound_only", bb, False)
        fc = ("fc_agg", bb, False)
        vis = ("visual_only", bb, False)
        visw = ("visual_only", bb, True)
        tt = ("tt_agg", bb, False)
        out += [
            (
                f"{bb}: FC_AGG converges faster than sound only",
                "Figure 7",
                "above",
                fc,
                sound,
                at_epoch(5, "accuracy"),
                "val accuracy at epoch 5, FC_AGG - sound only",
            ),
            (
                f"{bb}: FC_AGG ends level with sound only",
                "Tables 2, 4",
                "level",
                fc,
                sound,
                at_test("accuracy"),
                "test accuracy, FC_AGG - sound only",
            ),
            (
                f"{bb}: the weighted loss raises recall",
                "Table 3",
                "above",
                visw,
                vis,
                at_test("recall"),
                "test recall, weighted - unweighted",
            ),
            (
                f"{bb}: the weighted loss lowers precision",
                "Table 3",
                "below",
                visw,
                vis,
                at_test("precision"),
                "test precision, weighted - unweighted",
            ),
            (
                f"{bb}: TT_AGG's F1 is above the visual network's",
                "Tables 3, 5",
                "above",
                tt,
                vis,
                at_test("f1"),
                "test F1, TT_AGG - visual (unweighted)",
            ),
            (
                f"{bb}: TT_AGG's F1 is above the weighted visual network's",
                "Tables 3, 5",
                "above",
                tt,
                visw,
                at_test("f1"),
                "test F1, TT_AGG - visual (weighted)",
            ),
        ]
    out.append(
        (
            "ResNet TT_AGG beats VGG TT_AGG",
            "Table 5",
            "above",
            ("tt_agg", "resnet", False),
            ("tt_agg", "vgg", False),
            at_test("accuracy"),
            "test accuracy, ResNet - VGG",
        )
    )
    out.append(
        (
            "Retrieval keeps >= 75% good sounds up to K = 50",
            "Figure 8",
            "above",
            ("retrieve", "resnet", False),
            None,
            lowest_precision_above(0.75, 50),
            "lowest mean precision@K (K <= 50) - 0.75",
        )
    )
    return out
