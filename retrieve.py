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
  metrics.RETRIEVAL_DEFINITIONS (printed by --help) defines each metric and the tie rule.
- `--direction sound-to-image`: every test sound ranks the test frames, measured the same way.
- Writes runs/retrieve-<backbone>[-sound-to-image]-seed<k>/ (k: the seed the towers were trained with):
  metrics.json, precision_at_k.png, per_material.png, top5_sheet.png and WAVs (the five best sounds for
  the chosen image, the "generated" sound made tangible; the query sound for sound-to-image), all or none:
  after an error or Ctrl-C an earlier folder is left as it was.
"""

import argparse
import os
import signal
import sys

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import torch
    import torch.nn.functional as F

    import backbones
    import data
    import metrics
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

SCRIPT = "retrieve"
TOP = 5  # the items drawn on the sheet (and, image-to-sound, written as WAV files)
BATCH_SIZE = 128  # examples per forward pass: embedding needs no gradients, only bounded memory


def parse_args(argv=None):
    """The flags, checked: a bad one ends the command in one line (exit 2) before any work."""

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass  # the defaults after each flag's help, and DEFINITIONS kept as laid out

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=metrics.RETRIEVAL_DEFINITIONS, formatter_class=Formatter
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
        help="image-to-sound: each test image ranks a sound library (the paper's); "
        "sound-to-image: each test sound ranks the test frames",
    )
    parser.add_argument(
        "--run",
        default="runs/tt_agg-resnet-seed0",
        help="the tt_agg run folder whose model.pt holds the trained towers, or that model.pt itself "
        "(the paper uses ResNet, 4.4.1)",
    )
    parser.add_argument(
        "--query",
        default=None,
        help="the test video whose frame (sound-to-image: first clip) is the single query shown; "
        "none: a random test query drawn with --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the choice of the random query")
    parser.add_argument(
        "--library",
        choices=["all", "train"],
        default="all",
        help="image-to-sound: the sounds to rank, every clip of train + validation + test (paper 4.4.1), "
        "or the training clips only (paper 3.5)",
    )
    parser.add_argument(
        "--exclude-own-video",
        action="store_true",
        help="leave the query video's own items (an image's ten sounds, a sound's frame) out of its "
        "library: recorded with the very scene, they make the task easier than it looks (no effect with "
        "--library train, which holds no test video)",
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
        help="the results are saved in OUT/retrieve-BACKBONE[-sound-to-image]-seedK/, K the seed the "
        "towers were trained with",
    )
    args = parser.parse_args(argv)
    if args.k is not None and args.k < 1:
        parser.exit(2, f"error: --k must be 1 or more, got {args.k}\n")
    try:
        data.check_flags(args)  # --seed: the range every script accepts
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    if args.library != "all" and args.direction == "sound-to-image":
        parser.exit(
            2,
            f"error: --library must be all with --direction sound-to-image (which ranks the test frames), "
            f"got {args.library}\n",
        )
    return parser, args


# ----------------------------------------------------------------------------------------------------------
# Loading: the towers, the dataset they were trained on
# ----------------------------------------------------------------------------------------------------------


def load_towers(run, device):
    """TT_AGG's trained towers from RUN/model.pt (or RUN, a .pt file), in eval mode, and the checkpoint; a
    DataError naming the file and the command that makes a good one when it is missing or not usable."""
    path = run
    if not os.path.isfile(run):
        path = os.path.join(run, "model.pt")
    make = f"`python tt_agg.py --backbone {backbone_of_folder(path)}`"
    if not os.path.exists(path):
        raise data.DataError(f"no checkpoint at {path}: train the two-tower model first with {make}")
    if not os.path.isfile(path):  # a FIFO or a device would hang torch.load
        raise data.DataError(f"{path} is not a regular file: point --run at a run folder made by {make}")
    try:
        checkpoint, towers = backbones.read_tt_agg_towers(path, device)
    except Exception as e:  # unreadable, refused (a pickle that would run code), another script's, or damaged
        raise data.DataError(
            f"{path} is not a usable TT_AGG checkpoint ({backbones.why_unusable(e)}): point --run at a run "
            f"folder made by {make}"
        ) from None
    image_tower, sound_tower = [tower.to(device).eval() for tower in towers]  # eval: BN's running statistics
    return image_tower, sound_tower, checkpoint


def backbone_of_folder(path):
    """The backbone a run folder's name gives (tt_agg-vgg-seed0/model.pt -> 'vgg'), else 'resnet': for the
    command that makes a checkpoint, in a message."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    parts = folder.split("-")
    if len(parts) > 1 and parts[1] in backbones.BACKBONES:
        return parts[1]
    return "resnet"


def load_dataset(args, checkpoint, device):
    """The dataset to retrieve in: --data, or else the one the towers were trained on (so that its test split
    is unseen), refused when it is not the file they were trained on. Sets args.data."""
    trained_on = checkpoint["args"].get("data")  # None: the default toy dataset
    if args.data is None:
        if trained_on is not None and not os.path.exists(trained_on):
            raise data.DataError(
                f"the run was trained on {trained_on}, which is not there (paths are relative to where "
                f"tt_agg.py ran): give the dataset file with --data"
            )
        args.data = trained_on
    ds = data.load(args.data, device)
    if checkpoint.get("data_fingerprint") not in (None, ds.fingerprint):  # a regenerated dataset
        raise data.DataError(
            f"the dataset at {ds.path} is not the one the towers were trained on (regenerated?): "
            f"give that one with --data, or train again"
        )
    return ds


# ----------------------------------------------------------------------------------------------------------
# The task: who ranks what
# ----------------------------------------------------------------------------------------------------------


def make_task(ds, direction, library, exclude_own_video):
    """Who ranks what: the queries and the library's items, each a (video, clip) pair of (n,) tensors (clip
    None: frames), and candidates (Q, N), the item positions each query ranks (all, or all but its own
    video's)."""
    test = ds.videos("test")
    clips = torch.arange(data.CLIPS_PER_VIDEO, device=test.device)
    if direction == "image-to-sound":  # every test frame ranks the library's sounds
        videos = torch.arange(len(ds.video_ids), device=test.device)
        if library == "train":
            videos = ds.videos("train")
        queries = (test, None)
        items = (videos.repeat_interleave(len(clips)), clips.repeat(len(videos)))
    else:  # every test sound ranks the test frames
        queries = (test.repeat_interleave(len(clips)), clips.repeat(len(test)))
        items = (test, None)
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


def check_k(args, n):
    """--k, or by default 50 (the paper's) or the library size `n` when smaller; DataError above `n`."""
    k = args.k or min(metrics.TABLE_K[-1], n)
    if k > n:
        library = "the test frames"
        if args.direction == "image-to-sound":
            library = f"--library {args.library}"
        if args.exclude_own_video:
            library += ", less the query video"
        raise data.DataError(
            f"--k {k} is above the library size, {n} {metrics.DIRECTIONS[args.direction][1]}s ({library})"
        )
    return k


# ----------------------------------------------------------------------------------------------------------
# Embedding: every query and every library item, once
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def embed(ds, tower, video, clip):
    """Unit-length embeddings (n, 128) of the frames of `video` (clip None) or the sounds (video, clip), in
    order."""
    out = []
    for i in torch.arange(len(video), device=video.device).split(BATCH_SIZE):
        if clip is None:
            x = data.image_transform(ds.frames[video[i]], ds.size, train=False)  # (B, 3, S, S)
        else:
            x = ds.spectrograms[video[i], clip[i]]  # (B, 1, S, S)
        out.append(tower(x))
    return F.normalize(torch.cat(out), dim=1)


def score(ds, towers, direction, queries, items, candidates):
    """What each query's ranking is measured on, all (Q, N) but the last: similarity, the cosine of query q
    and the n-th item of its library; relevant, "good" (4.4.1): the sound's material is among the frame's
    labels; own: the item is from the query's own video; query_materials (Q, 17), what each query shows or
    sounds like."""
    query_kind, item_kind = metrics.DIRECTIONS[direction]
    query_embedding = embed(ds, towers[query_kind], *queries)  # (Q, 128)
    item_embedding = embed(ds, towers[item_kind], *items)  # (L, 128)
    similarity = (query_embedding @ item_embedding.T).gather(1, candidates)  # (Q, L) -> (Q, N): cosines
    item_video = items[0][candidates]  # (Q, N)
    if query_kind == "image":
        frame = queries[0][:, None]  # (Q, 1)
        material = ds.clip_materials[item_video, items[1][candidates]]  # (Q, N)
        query_materials = ds.image_labels[queries[0]]  # (Q, 17)
    else:
        frame = item_video  # (Q, N)
        material = ds.clip_materials[queries[0], queries[1]][:, None]  # (Q, 1)
        query_materials = F.one_hot(material[:, 0], data.NUM_MATERIALS).bool()  # (Q, 17)
    relevant = ds.image_labels[frame, material]  # (Q, N)
    own = item_video == queries[0][:, None]  # (Q, N)
    return similarity, relevant, own, query_materials


def describe(ds, video, clip):
    """A query or an item as metrics.json and the sheet say it: its video and, for a frame, the materials it
    shows; for a sound (a clip), its clip and material."""
    described = {"video_id": ds.video_ids[video]}
    if clip is None:
        described["labels"] = [
            data.MATERIALS[i] for i in torch.nonzero(ds.image_labels[video]).flatten().tolist()
        ]
    else:
        described["clip"] = int(clip)
        described["material"] = data.MATERIALS[ds.clip_materials[video, clip]]
    return described


def clip_of(task, i):
    """The clip of the i-th query or item of `task` ((video, clip) tensors), None for a frame."""
    if task[1] is None:
        return None
    return task[1][i]


def top_items(ds, similarity, relevant, query, items, candidates):
    """The single query's TOP best items, ranked (ties pessimistic), each described with its rank, whether it
    is good and its cosine."""
    top = metrics.rank(similarity, relevant)[query, :TOP].tolist()  # positions in the query's library
    found = []
    for r, j in enumerate(top):
        item = candidates[query, j].item()  # its position among all the items
        found.append(
            {
                "rank": r + 1,
                **describe(ds, items[0][item], clip_of(items, item)),
                "good": bool(relevant[query, j]),
                "similarity": similarity[query, j].item(),
            }
        )
    return found


# ----------------------------------------------------------------------------------------------------------
# Figures and saving
# ----------------------------------------------------------------------------------------------------------


def save(out, m, ds):
    """The run folder: metrics.json, the three figures and the WAVs (the single query's top five sounds, or
    the query sound), all or none (data.save_run). Returns the names of the WAVs."""
    query_kind = metrics.DIRECTIONS[m["direction"]][0]
    q = m["query"]
    if query_kind == "image":  # the query's frame, its top five sounds
        frames = [q]
        sounds = m["top5"]
        names = [f"top5/{t['rank']}-{t['material']}.wav" for t in sounds]
    else:  # the query's sound, its top five frames
        sounds = [q]
        frames = m["top5"]
        names = [f"query-{q['material']}.wav"]
    # The raw clips, memory-mapped: only the few used are read from the file.
    raw = torch.load(ds.path, map_location="cpu", weights_only=True, mmap=True)
    clips = [raw["clips"][ds.video_ids.index(t["video_id"]), t["clip"]] for t in sounds]  # (N,) int16 each
    # Drawn at 128 pixels, finer than the toy's 32-pixel model input, so that a reader sees the hit's shape.
    spectrograms = list(data.spectrogram(torch.stack(clips), ds.sample_rate, 128))  # (1, 128, 128) each
    pictures = [ds.frames[ds.video_ids.index(t["video_id"])] for t in frames]  # (3, S, S) each
    if query_kind == "image":
        pictures = pictures + spectrograms
    else:
        pictures = spectrograms + pictures
    figures = [
        ("top5_sheet.png", metrics.top_sheet_figure(m, pictures)),
        ("precision_at_k.png", metrics.precision_at_k_figure(m, ds.source)),
        ("per_material.png", metrics.per_material_figure(m)),
    ]
    data.save_run(out, m, figures=figures, sounds=zip(names, clips, strict=True))  # together, or not at all
    return names


# ----------------------------------------------------------------------------------------------------------
# The whole retrieval
# ----------------------------------------------------------------------------------------------------------


def retrieve(args):
    """Load the towers and the dataset, embed, rank, print, save: each step above, in order. Every problem a
    user can cause is a DataError, raised before any file is written."""
    device = data.pick_device(args.device)
    image_tower, sound_tower, checkpoint = load_towers(args.run, device)
    trained_seed = int(checkpoint["args"].get("seed", 0))
    script = SCRIPT
    if args.direction == "sound-to-image":
        script = f"{SCRIPT}-sound-to-image"
    out = os.path.join(args.out, data.run_name(script, checkpoint["backbone"], seed=trained_seed))
    data.claim_run_folder(out)  # where the results go: found out now, not after the work
    trained_on = checkpoint["args"].get("data")
    ds = load_dataset(args, checkpoint, device)
    queries, items, candidates = make_task(ds, args.direction, args.library, args.exclude_own_video)
    query = pick_query(ds, queries[0], args.query, args.seed)
    n = candidates.shape[1]  # the library size of each query
    args.k = check_k(args, n)
    query_kind, item_kind = metrics.DIRECTIONS[args.direction]
    # The train library holds no test video: the query's own sounds are left out whether asked or not.
    own_left_out = args.exclude_own_video or args.library == "train"
    library = "test"
    if query_kind == "image":
        library = args.library
    default_toy = data.toy_path(**data.TOY_DEFAULTS)
    if os.path.realpath(args.data or default_toy) != os.path.realpath(trained_on or default_toy):
        print(
            f"note: the towers were trained on {trained_on or 'the default toy dataset'}, retrieving on "
            f"{args.data}: its test images may have been seen in training"
        )
    print(
        f"{SCRIPT}: {ds.describe()}; device {device}; {backbones.BACKBONES[checkpoint['backbone']]} TT_AGG "
        f"towers from {args.run}; {query_kind} -> {item_kind}, library {library} ({n} {item_kind}s), the "
        f"query's own video {'left out' if own_left_out else 'included'}",
        flush=True,
    )

    towers = {"image": image_tower, "sound": sound_tower}
    similarity, relevant, own, query_materials = score(ds, towers, args.direction, queries, items, candidates)
    curves, table, without_relevant, per_query = metrics.retrieval_scores(
        similarity, relevant, own, query, args.k
    )
    q = describe(ds, queries[0][query], clip_of(queries, query))
    q.setdefault("labels", [q.get("material")])  # a sound query: its one material
    m = {
        "script": SCRIPT,
        "backbone": checkpoint["backbone"],
        "trained_seed": trained_seed,
        "direction": args.direction,
        "args": vars(args),
        "data": ds.describe(),
        "source": ds.source,
        "checkpoint": args.run,
        "trained_epochs": checkpoint["args"].get("epochs"),
        "library": library,
        "library_size": n,
        "exclude_own_video": own_left_out,
        "k": args.k,
        "test_images": len(ds.videos("test")),
        "queries": len(similarity),
        "query": {"index": query, **q, "random": relevant[query].float().mean().item()},  # its random P@K
        **curves,
        "table": table,
        "queries_without_relevant": without_relevant,
        "top5": top_items(ds, similarity, relevant, query, items, candidates),
        "per_material_k": min(metrics.MATERIAL_K, n),
        "per_material": metrics.per_material(query_materials, *per_query),
        "data_fingerprint": ds.fingerprint,
    }
    print("\n".join(metrics.format_retrieval(m, ds.source)))
    names = save(out, m, ds)
    saved = "top5/*.wav"
    if query_kind == "sound":
        saved = names[0]
    print(f"saved {out}/: metrics.json, precision_at_k.png, per_material.png, top5_sheet.png, {saved}")


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        retrieve(args)
    except data.DataError as e:  # a bad checkpoint, dataset or --query, or an --out that is not ours
        parser.exit(2, f"error: {e}\n")
    except KeyboardInterrupt:  # the run folder is swapped in whole or not at all: nothing half-written
        parser.exit(130, f"interrupted: nothing written (an earlier run folder in {args.out} is unchanged)\n")


if __name__ == "__main__":
    main()
