"""Sound generation: the trained TT_AGG towers recommend sounds for an image (paper 3.5, 4.4.1, Figure 8).

    python retrieve.py --k 50
    python retrieve.py --direction sound-to-image      # the reverse: each test sound ranks the test frames

Nearest neighbours, no training: the image tower embeds every test frame, the sound tower every clip of a
sound library, both L2-normalised, and each frame ranks the library by cosine similarity (one matrix
product). A retrieved sound is "good", relevant, when its material is among the frame's labels (4.4.1).
- The paper's view: precision@K for one random test image (seeded; `--query ID` picks one), K = 1..k,
  library = every clip of train + validation + test (4.4.1; `--library train` is section 3.5's library).
- Beyond the paper, over every test image and each beside what a random ranking scores: precision@K, mean
  average precision, recall@K of the image's own recording and the rank of its first own clip, and the
  same per material. `--exclude-own-video` leaves the query's own ten sounds out of its library.
  DEFINITIONS below (printed by --help) defines each metric and the tie rule.
- `--direction sound-to-image`: every test sound ranks the test frames, measured the same way.
- Writes runs/retrieve-<backbone>[-sound-to-image]-seed<k>/ (k: the seed the towers were trained with):
  metrics.json, precision_at_k.png, per_material.png, top5_sheet.png and WAVs (the five best sounds for
  the chosen image, the "generated" sound made tangible; the query sound for sound-to-image), all or none:
  after an error or Ctrl-C an earlier folder is left as it was.
"""

import argparse
import os
import warnings
import wave

import torch
import torch.nn.functional as F

import backbones
import data
import metrics

SCRIPT = "retrieve"
TABLE_K = [1, 5, 10, 25, 50]  # the K of precision@K in the printed table (and --k itself)
RECALL_K = [1, 5, 10]  # the K of recall@K of the own recording
MATERIAL_K = 10  # the K of the per-material precision@K
TOP = 5  # the items drawn on the sheet (and, image-to-sound, written as WAV files)
BATCH_SIZE = 128  # examples per forward pass: embedding needs no gradients, only bounded memory
DEFINITIONS = """\
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


def parse_args(argv=None):
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass  # the defaults after each flag's help, and DEFINITIONS kept as laid out

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=DEFINITIONS, formatter_class=Formatter
    )
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help="rank the top K, K = 1..k (paper: 50); none: 50, or the library size when smaller",
    )
    parser.add_argument(
        "--direction",
        choices=list(metrics.DIRECTIONS),
        default="image-to-sound",
        help="image-to-sound: "
        "each test image ranks a sound library (the paper's); sound-to-image: each test sound ranks "
        "the test frames",
    )
    parser.add_argument(
        "--run",
        default="runs/tt_agg-resnet-seed0",
        help="the tt_agg run folder whose model.pt "
        "holds the trained towers, or that model.pt itself (the paper uses ResNet, 4.4.1)",
    )
    parser.add_argument(
        "--query",
        default=None,
        help="the test video whose frame (sound-to-image: first clip) is "
        "the single query shown; none: a random test query drawn with --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the choice of the random query")
    parser.add_argument(
        "--library",
        choices=["all", "train"],
        default="all",
        help="image-to-sound: the sounds to "
        "rank, every clip of train + validation + test (paper 4.4.1), or the training clips only "
        "(paper 3.5)",
    )
    parser.add_argument(
        "--exclude-own-video",
        action="store_true",
        help="leave the query video's own items (an "
        "image's ten sounds, a sound's frame) out of its library: recorded with the very scene, they "
        "make the task easier than it looks (no effect with --library train, which holds no test "
        "video)",
    )
    parser.add_argument(
        "--data", default=None, help="a dataset file made by data.py; none: the one the run was trained on"
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cuda", "cpu"],
        default="auto",
        help="auto: CUDA when a GPU is visible, else CPU",
    )
    parser.add_argument(
        "--out",
        default="runs",
        help="the results are saved in OUT/retrieve-BACKBONE["
        "-sound-to-image]-seedK/, K the seed the towers were trained with",
    )
    args = parser.parse_args(argv)
    for flag, value, ok, allowed in [
        ("--k", args.k, args.k is None or args.k >= 1, "1 or more"),
        ("--seed", args.seed, 0 <= args.seed < 2**63, "from 0 to 2**63 - 1"),
        (
            "--library",
            args.library,
            args.library == "all" or args.direction == "image-to-sound",
            "all with --direction sound-to-image (which ranks the test frames)",
        ),
    ]:
        if not ok:
            parser.exit(2, f"error: {flag} must be {allowed}, got {value}\n")
    return parser, args


# ----------------------------------------------------------------------------------------------------------
# Ranking and the retrieval metrics. Each takes similarity (Q, N), query q's score for library item n, and
# relevant (Q, N) bool; a library excluded for a query is simply not among its N columns.
def measure(similarity, relevant, own, query, k):
    """Every metric of one retrieval. similarity, relevant, own (Q, N), own[q, n]: item n is from query q's own
    video; query: the position of the single query shown (the paper's view). Returns the precision@K curves,
    K = 1..k ("single": that query, "mean" and "std" over the queries, "random"); the table {row: {"single", "all",
    "std", "random"}}, "all" over every query (the mean; the median for "median rank"), "std" its spread where it
    means something; the number of queries without a relevant item; per query precision@MATERIAL_K, AP, random AP.
    """
    n = relevant.shape[1]
    precision = metrics.precision_at_k(similarity, relevant, k).cpu()  # (Q, k)
    ap = metrics.average_precision(similarity, relevant).cpu()  # (Q,), NaN: undefined
    random_precision = relevant.float().mean(1).mean().item()  # for every K
    random_ap = torch.tensor(
        [metrics.random_average_precision(n, r) for r in relevant.sum(1).tolist()]
    )  # (Q,)
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
        first = metrics.first_relevant_rank(similarity, own).double().cpu()  # (Q,)
        r = int(own[0].sum())  # the same for every query: an image's ten sounds, a sound's one frame
        for K in [K for K in RECALL_K if K <= n]:
            table[f"R@{K}"] = row(
                first[query] <= K, (first <= K).double(), metrics.random_recall_at_k(n, r, K), False
            )
        random_mean, random_median = metrics.random_first_rank(n, r)
        table["median rank"] = {
            **row(first[query], first, random_median, False),
            "all": first.quantile(0.5).item(),
        }  # an even count: the two middle ones' mean
        table["mean rank"] = row(first[query], first, random_mean, False)
    material_precision = metrics.precision_at_k(similarity, relevant, min(MATERIAL_K, n))[:, -1].cpu()  # (Q,)
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
        for name, of in zip(data.MATERIALS, query_materials.cpu().T)
        if of.any()
    ]


# ----------------------------------------------------------------------------------------------------------
# The towers, the queries and the library
# ----------------------------------------------------------------------------------------------------------


def load_towers(run, device):
    """TT_AGG's trained towers from RUN/model.pt (or RUN, a .pt file), in eval mode, and the checkpoint; a DataError
    naming the file and the command that makes a good one when it is missing or not usable."""
    path = run if os.path.isfile(run) else os.path.join(run, "model.pt")
    guess = (os.path.basename(os.path.dirname(os.path.abspath(path))) + "-").split("-")[
        1
    ]  # tt_agg-vgg-seed0 -> vgg
    make = f"`python tt_agg.py --backbone {guess if guess in backbones.BACKBONES else 'resnet'}`"
    if not os.path.exists(path):
        raise data.DataError(f"no checkpoint at {path}: train the two-tower model first with {make}")
    try:
        with warnings.catch_warnings(
            action="ignore"
        ):  # torch's warnings about some pickles: one line is enough
            checkpoint = torch.load(path, weights_only=True, map_location=device)  # tensors only, never code
        if checkpoint.get("script") != "tt_agg" or not isinstance(checkpoint.get("args"), dict):
            raise ValueError(
                f"made by {checkpoint['script']}.py" if checkpoint.get("script") else "it names no script"
            )
        towers = [
            backbones.tower(checkpoint["backbone"], channels, backbones.EMBEDDING_DIM) for channels in (3, 1)
        ]
        for tower, key in zip(towers, ["image_tower", "sound_tower"]):
            tower.load_state_dict(checkpoint[key])
            if not all(t.isfinite().all() for t in tower.state_dict().values()):
                raise ValueError("its towers hold NaN or infinite weights: the training diverged")
    except Exception as e:  # unreadable, refused (a pickle that would run code), another script's, or damaged
        why = (
            "refused: it holds Python objects, and loading them could run code"
            if "GLOBAL" in str(e)
            else str(e)
            if isinstance(e, ValueError)
            # torch's own messages run to many lines: the first
            else f"{type(e).__name__}: {e}".splitlines()[0].split(". ")[0][:100]
        )
        raise data.DataError(
            f"{path} is not a usable TT_AGG checkpoint ({why}): point --run at a run folder made by {make}"
        ) from None
    return *(tower.to(device).eval() for tower in towers), checkpoint  # eval: BN's running statistics


def make_task(ds, direction, library, exclude_own_video):
    """Who ranks what: the queries and the library's items, each a (video, clip) pair of (n,) tensors (clip None:
    frames), and candidates (Q, N), the item positions each query ranks (all, or all but its own video's)."""
    test = ds.videos("test")
    clips = torch.arange(data.CLIPS_PER_VIDEO, device=test.device)
    if direction == "image-to-sound":
        videos = (
            ds.videos("train") if library == "train" else torch.arange(len(ds.video_ids), device=test.device)
        )
        queries, items = (test, None), (videos.repeat_interleave(len(clips)), clips.repeat(len(videos)))
    else:  # every test sound ranks the test frames
        queries, items = (test.repeat_interleave(len(clips)), clips.repeat(len(test))), (test, None)
    own = items[0][None, :] == queries[0][:, None]  # (Q, L)
    keep = ~own if exclude_own_video else torch.ones_like(own)  # the same number left out of every row
    candidates = torch.arange(len(items[0]), device=test.device).expand_as(own)[keep].view(len(own), -1)
    return queries, items, candidates  # (Q, N)


def pick_query(ds, query_video, video_id, seed):
    """Position among the queries of the single query shown: --query's video (its first clip for sounds), or
    one drawn with the seed ("a random image from the test set", 4.4.1)."""
    ids = [ds.video_ids[v] for v in query_video.tolist()]
    if video_id is None:
        return int(torch.randint(len(ids), (1,), generator=torch.Generator().manual_seed(seed)))
    if video_id in ids:
        return ids.index(video_id)
    examples = ", ".join(list(dict.fromkeys(ids))[:3])
    if video_id not in ds.video_ids:
        raise data.DataError(
            f"unknown --query {video_id}: no such video in {ds.path}; test videos are e.g. {examples}"
        )
    split = list(data.SPLITS)[int(ds.split[ds.video_ids.index(video_id)])]
    raise data.DataError(
        f"--query {video_id} is a {split} video: the query must be a test video, e.g. {examples}"
    )


@torch.no_grad()
def embed(ds, tower, video, clip):
    """Unit-length embeddings (n, 128) of the frames of `video` (clip None) or the sounds (video, clip), in order."""
    out = []
    for i in torch.arange(len(video), device=video.device).split(BATCH_SIZE):
        x = (
            data.image_transform(ds.frames[video[i]], ds.size, train=False)
            if clip is None
            else ds.spectrograms[video[i], clip[i]]
        )  # (B, C, S, S)
        out.append(tower(x))
    return F.normalize(torch.cat(out), dim=1)


# ----------------------------------------------------------------------------------------------------------
# Showing and saving the results
# ----------------------------------------------------------------------------------------------------------


def format_per_material(m):
    """The per-material table: queries, precision@K, AP and random AP for each query material."""
    counted = (
        "an image counts toward each material it shows"
        if m["direction"] == "image-to-sound"
        else "a sound counts toward its material"
    )
    lines = [
        f"Per query material ({counted}; AP: mean over its queries with a relevant item)",
        f"{'material':<13}{'queries':>8}{'P@' + str(m['per_material_k']):>8}{'AP':>8}{'random AP':>11}",
    ]
    for r in m["per_material"]:  # AP "-": none of the material's queries has a relevant item in its library
        ap, random_ap = (f"{x:.3f}" if x == x else "-" for x in (r["ap"], r["random_ap"]))
        lines.append(f"{r['material']:<13}{r['queries']:>8}{r['precision']:>8.3f}{ap:>8}{random_ap:>11}")
    return lines


def library_words(m):
    """'all, 240 sounds, the query's own video included', as the figures say it."""
    if m["library"] == "train":
        return f"train, {m['library_size']} sounds, none from a test video"
    return (
        f"{m['library']}, {m['library_size']} {metrics.DIRECTIONS[m['direction']][1]}s, the query's own video "
        f"{'left out' if m['exclude_own_video'] else 'included'}"
    )


def where(x):
    """A query or an item of metrics.json as its video, and its clip for a sound: 'toy-0-0021 clip 0'."""
    return x["video_id"] + (f" clip {x['clip']}" if "clip" in x else "")


def plot_curves(m, source, path):
    """precision_at_k.png: Figure 8's curve for the single query, beside the mean ± std over every test query and
    random retrieval."""
    from matplotlib.ticker import MaxNLocator

    query, item = metrics.DIRECTIONS[m["direction"]]
    k, mean, std = torch.arange(1, m["k"] + 1), torch.tensor(m["mean"]), torch.tensor(m["std"])
    fig, ax = metrics.pyplot().subplots(figsize=(9, 6), layout="constrained")
    ax.fill_between(
        k,
        (mean - std).clamp(0, 1),
        (mean + std).clamp(0, 1),
        color="tab:blue",
        alpha=0.2,
        label=f"± std over the {m['queries']} test {query}s",
    )
    ax.plot(
        k,
        mean,
        color="tab:blue",
        label=f"mean over the {m['queries']} test {query}s (mAP {m['table']['mAP']['all']:.3f})",
    )
    ax.plot(
        k,
        m["single"],
        color="tab:orange",
        marker=".",
        label=f"one test {query} ({m['query']['video_id']}: "
        f"{', '.join(m['query']['labels'])})" + (", as in the paper" if query == "image" else ""),
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
    ax.set_title(
        f"{'Figure 8: ' if query == 'image' else ''}share of good {item}s in the top K, "
        f"{backbones.BACKBONES[m['backbone']]} TT_AGG, {metrics.source_name(source)}\nlibrary: "
        f"{library_words(m)}; good: the sound's material is in the frame",
        fontsize=10,
    )
    metrics.save_png(fig, path)


def plot_sheet(m, pictures, path):
    """top5_sheet.png: the query, then its five best items, framed green when good and red when not. pictures:
    the query's and the items', each a frame (3, S, S) uint8 or a spectrogram (1, H, W)."""
    plt = metrics.pyplot()
    query, item = metrics.DIRECTIONS[m["direction"]]
    q = m["query"]
    titles = [
        (
            f"query: {where(q)}\n{'shows' if query == 'image' else 'material'}: {', '.join(q['labels'])}",
            "black",
        )
    ] + [
        (
            f"{h['rank']}. {h.get('material') or ', '.join(h['labels'])}: "
            f"{'good' if h['good'] else 'not good'}\n{where(h)}"
            f"{' (own video)' if h['video_id'] == q['video_id'] else ''}\ncosine "
            f"{h['similarity']:.3f}",
            "tab:green" if h["good"] else "tab:red",
        )
        for h in m["top5"]
    ]
    fig, axes = plt.subplots(1, len(pictures), figsize=(2.9 * len(pictures), 3.6), layout="constrained")
    for ax, picture, (title, color) in zip(axes, pictures, titles):
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
    metrics.save_png(fig, path)


def plot_per_material(m, path):
    """per_material.png: precision@K and AP per query material, random AP marked beside them."""
    query, rows = metrics.DIRECTIONS[m["direction"]][0], m["per_material"]
    y = torch.arange(len(rows)).float()
    fig, ax = metrics.pyplot().subplots(figsize=(8, 1.5 + 0.35 * len(rows)), layout="constrained")
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
    metrics.save_png(fig, path)


def write_wav(clip, sample_rate, path):
    """(N,) int16 clip -> mono 16-bit PCM WAV (little-endian samples)."""

    def write(f):
        with wave.open(f, "wb") as w:
            w.setparams((1, 2, sample_rate, 0, "NONE", "not compressed"))
            w.writeframes(clip.cpu().numpy().astype("<i2").tobytes())

    data.atomic_write(path, write)


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        retrieve(parser, args)
    except KeyboardInterrupt:  # the run folder is swapped in whole or not at all: nothing half-written
        parser.exit(130, f"interrupted: nothing written (an earlier run folder in {args.out} is unchanged)\n")


def retrieve(parser, args):
    try:
        device = data.pick_device(args.device)
        image_tower, sound_tower, checkpoint = load_towers(args.run, device)
        trained_seed = int(checkpoint["args"].get("seed", 0))
        out = os.path.join(
            args.out,
            f"{SCRIPT}-{checkpoint['backbone']}"
            f"{'-sound-to-image' if args.direction == 'sound-to-image' else ''}-seed{trained_seed}",
        )
        data.check_out(out, folder=True)  # where the results go: found out now, not after the work
        trained_on = checkpoint["args"].get("data")  # None: the default toy dataset
        if args.data is None:  # the dataset the towers were trained on, so that its test split is unseen
            if trained_on is not None and not os.path.exists(trained_on):
                raise data.DataError(
                    f"the run was trained on {trained_on}, which is not there (paths are "
                    f"relative to where tt_agg.py ran): give the dataset file with --data"
                )
            args.data = trained_on
        ds = data.load(args.data, device)
        raw = torch.load(
            ds.path, map_location="cpu", weights_only=True, mmap=True
        )  # read where used: 5 clips
        if checkpoint.get("data_fingerprint") not in (None, ds.fingerprint):  # a regenerated dataset
            raise data.DataError(
                f"the dataset at {ds.path} is not the one the towers were trained on (regenerated?): "
                f"give that one with --data, or train again"
            )
        queries, items, candidates = make_task(ds, args.direction, args.library, args.exclude_own_video)
        query = pick_query(ds, queries[0], args.query, args.seed)
        n = candidates.shape[1]  # the library size of each query
        args.k = args.k or min(TABLE_K[-1], n)
        if args.k > n:
            library = f"--library {args.library}" if args.direction == "image-to-sound" else "the test frames"
            raise data.DataError(
                f"--k {args.k} is above the library size, {n} {metrics.DIRECTIONS[args.direction][1]}s "
                f"({library}{', less the query video' if args.exclude_own_video else ''})"
            )
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    backbone = checkpoint["backbone"]
    query_kind, item_kind = metrics.DIRECTIONS[args.direction]
    # The train library holds no test video: the query's own sounds are left out whether asked or not.
    own_left_out = args.exclude_own_video or args.library == "train"
    if len({os.path.realpath(p or data.toy_path(**data.TOY_DEFAULTS)) for p in (args.data, trained_on)}) > 1:
        print(
            f"note: the towers were trained on {trained_on or 'the default toy dataset'}, retrieving on "
            f"{args.data}: its test images may have been seen in training"
        )
    print(
        f"{SCRIPT}: {ds.describe()}; device {device}; {backbones.BACKBONES[backbone]} TT_AGG towers from "
        f"{args.run}; {query_kind} -> {item_kind}, library {args.library if query_kind == 'image' else 'test'} "
        f"({n} {item_kind}s), the query's own video {'left out' if own_left_out else 'included'}",
        flush=True,
    )

    # Embed once: every query and every library item; each query's similarity to the items it ranks.
    towers = {"image": image_tower, "sound": sound_tower}
    similarity = (
        embed(ds, towers[query_kind], *queries) @ embed(ds, towers[item_kind], *items).T  # (Q, L)
    ).gather(1, candidates)  # (Q, N): cosines
    # Relevant ("good", 4.4.1): the sound's material is among the frame's labels. Own: the query's own video.
    item_video = items[0][candidates]  # (Q, N)
    if query_kind == "image":
        frame, material = queries[0][:, None], ds.clip_materials[item_video, items[1][candidates]]
        query_materials = ds.image_labels[queries[0]]  # (Q, 17)
    else:
        frame, material = item_video, ds.clip_materials[queries[0], queries[1]][:, None]
        query_materials = F.one_hot(material[:, 0], data.NUM_MATERIALS).bool()  # (Q, 17)
    relevant = ds.image_labels[frame, material]  # (Q, N)
    own = item_video == queries[0][:, None]  # (Q, N)
    curves, table, without_relevant, per_query = measure(similarity, relevant, own, query, args.k)

    def describe(video, clip):  # a query or item as metrics.json and the sheet say it
        return {
            "video_id": ds.video_ids[video],
            **(
                {
                    "labels": [
                        data.MATERIALS[i] for i in torch.nonzero(ds.image_labels[video]).flatten().tolist()
                    ]
                }
                if clip is None
                else {"clip": int(clip), "material": data.MATERIALS[ds.clip_materials[video, clip]]}
            ),
        }

    top = metrics.rank(similarity, relevant)[
        query, :TOP
    ].tolist()  # the single query's best items, ties pessimistic
    top_items = [candidates[query, j].item() for j in top]
    q = describe(queries[0][query], None if queries[1] is None else queries[1][query])
    q.setdefault("labels", [q.get("material")])
    top5 = [
        {
            "rank": r + 1,
            **describe(items[0][j], None if items[1] is None else items[1][j]),
            "good": bool(relevant[query, top[r]]),
            "similarity": similarity[query, top[r]].item(),
        }
        for r, j in enumerate(top_items)
    ]
    m = {
        "script": SCRIPT,
        "backbone": backbone,
        "trained_seed": trained_seed,
        "direction": args.direction,
        "args": vars(args),
        "data": ds.describe(),
        "source": ds.source,
        "checkpoint": args.run,
        "trained_epochs": checkpoint["args"].get("epochs"),
        "library": args.library if query_kind == "image" else "test",
        "library_size": n,
        "exclude_own_video": own_left_out,
        "k": args.k,
        "test_images": len(ds.videos("test")),
        "queries": len(similarity),
        "query": {"index": query, **q, "random": relevant[query].float().mean().item()},  # its random P@K
        **curves,
        "table": table,
        "queries_without_relevant": without_relevant,
        "top5": top5,
        "per_material_k": min(MATERIAL_K, n),
        "per_material": per_material(query_materials, *per_query),
        "data_fingerprint": ds.fingerprint,
    }

    print(
        f"query: test {query_kind} {where(q)} ({', '.join(q['labels'])}); its top {len(top5)} {item_kind}s:"
    )
    for hit in top5:
        print(
            f"  {hit['rank']}. {hit.get('material') or ', '.join(hit['labels']):<20} "
            f"{'good' if hit['good'] else 'not good':<9} {where(hit)}  cosine {hit['similarity']:.3f}"
            f"{'  (own video)' if hit['video_id'] == q['video_id'] else ''}"
        )
    print("\n".join(metrics.format_retrieval_table([m], metrics.source_name(ds.source))))
    if query_kind == "image":
        print(f"paper (one test image, ResNet): {metrics.PAPER_FIGURE_8}")
    print("\n".join(format_per_material(m)))

    # The raw clips (memory-mapped: only those used are read): the WAVs and the sheet's spectrograms.
    clips = [
        raw["clips"][ds.video_ids.index(t["video_id"]), t["clip"]]  # (N,) int16 each
        for t in ([q] if query_kind == "sound" else top5)
    ]
    # Drawn at 128 pixels, finer than the toy's 32-pixel model input, so that a reader sees the hit's shape.
    spectrograms = list(data.spectrogram(torch.stack(clips), ds.sample_rate, 128))  # (1, 128, 128) each
    frames = [ds.frames[ds.video_ids.index(t["video_id"])] for t in ([q] if query_kind == "image" else top5)]
    pictures = frames + spectrograms if query_kind == "image" else spectrograms + frames
    names = (
        [f"top5/{t['rank']}-{t['material']}.wav" for t in top5]
        if query_kind == "image"
        else [f"query-{q['material']}.wav"]
    )

    try:
        with data.atomic_folder(out) as folder:  # the run's files appear together or not at all
            for name, clip in zip(names, clips):
                write_wav(clip, ds.sample_rate, os.path.join(folder, name))
            plot_sheet(m, pictures, os.path.join(folder, "top5_sheet.png"))
            plot_curves(m, ds.source, os.path.join(folder, "precision_at_k.png"))
            plot_per_material(m, os.path.join(folder, "per_material.png"))
            metrics.write_json(m, os.path.join(folder, "metrics.json"))
    except data.DataError as e:  # --out holds something that is not ours: left as it is
        parser.exit(2, f"error: {e}\n")
    print(
        f"saved {out}/: metrics.json, precision_at_k.png, per_material.png, top5_sheet.png, "
        f"{'top5/*.wav' if query_kind == 'image' else names[0]}"
    )


if __name__ == "__main__":
    main()
