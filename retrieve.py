"""Sound generation: the trained TT_AGG towers recommend sounds for an image (paper 3.5, 4.4.1, Figure 8).

    python retrieve.py --k 50

Nearest neighbours, no training: the image tower embeds every test frame, the sound tower every clip of a
sound library, both L2-normalised, and each frame ranks the library by cosine similarity (one matrix
product). A retrieved sound is "good" when its material is among the frame's labels (4.4.1); precision@K
is the share of good sounds among the top K.
- The paper's view: one random test image (seeded; `--query ID` picks one), K = 1..k, library = every
  clip of train + validation + test (4.4.1; `--library train` is section 3.5's training-set library).
- Beyond the paper: the same curve averaged over every test image, with its spread, and random retrieval
  (the share of good sounds in the query's library). With `--library all`, the query's own ten sounds are in
  the library; `--exclude-own-video` leaves them out.
- Writes runs/retrieve-<backbone>-seed<k>/ (k: the seed the towers were trained with): metrics.json, precision_at_k.png, top5_sheet.png and top5/*.wav (the
  five best sounds for the chosen image, the "generated" sound made tangible).
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
TABLE_K = [1, 5, 10, 25, 50]  # the K printed and saved in the table (and --k itself)
TOP = 5  # the sounds written as WAV files and drawn on the sheet
BATCH_SIZE = 128  # examples per forward pass: embedding needs no gradients, only bounded memory


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--k", type=int, default=50, help="retrieve the top K sounds, K = 1..k (paper: 50)")
    parser.add_argument("--run", default="runs/tt_agg-resnet-seed0",
                        help="the tt_agg run folder whose model.pt holds the trained towers, or that model.pt "
                             "itself (the paper uses ResNet, 4.4.1)")
    parser.add_argument("--query", default=None,
                        help="the test video whose frame is the paper's single query; none: a random test image "
                             "drawn with --seed")
    parser.add_argument("--seed", type=int, default=0, help="seeds the choice of the random query image")
    parser.add_argument("--library", choices=["all", "train"], default="all",
                        help="the sounds to rank: every clip of train + validation + test (paper 4.4.1), or "
                             "the training clips only (paper 3.5)")
    parser.add_argument("--exclude-own-video", action="store_true",
                        help="leave the query video's own ten sounds out of its library: they were recorded "
                             "with the very scene in the frame, so retrieving them makes the task easier than "
                             "it looks (no effect with --library train, which holds no test video)")
    parser.add_argument("--data", default=None,
                        help="a dataset file made by data.py; none: the one the run was trained on")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                        help="auto: CUDA when a GPU is visible, else CPU")
    parser.add_argument("--out", default="runs", help="the results are saved in OUT/retrieve-BACKBONE-seedK/, K the seed the towers were trained with")
    args = parser.parse_args(argv)
    for flag, value, ok, allowed in [("--k", args.k, args.k >= 1, "1 or more"),
                                     ("--seed", args.seed, 0 <= args.seed < 2 ** 63, "from 0 to 2**63 - 1")]:
        if not ok:
            parser.exit(2, f"error: {flag} must be {allowed}, got {value}\n")
    return parser, args


def load_towers(run, device):
    """TT_AGG's trained towers from RUN/model.pt (or RUN itself, a .pt file), in eval mode, and the checkpoint;
    a DataError naming the file and the command that makes a good one when it is missing or not usable."""
    path = run if os.path.isfile(run) else os.path.join(run, "model.pt")
    guess = (os.path.basename(os.path.dirname(os.path.abspath(path))) + "-").split("-")[1]  # tt_agg-vgg-seed0 -> vgg
    make = f"`python tt_agg.py --backbone {guess if guess in backbones.BACKBONES else 'resnet'}`"
    if not os.path.exists(path):
        raise data.DataError(f"no checkpoint at {path}: train the two-tower model first with {make}")
    try:
        with warnings.catch_warnings():  # torch warns on stderr about some pickles: the one error line is enough
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, weights_only=True, map_location=device)  # tensors only, never code
        if checkpoint.get("script") != "tt_agg" or not isinstance(checkpoint.get("args"), dict):
            raise ValueError(f"made by {checkpoint['script']}.py" if checkpoint.get("script") else "it names no script")
        image_tower, sound_tower = (backbones.tower(checkpoint["backbone"], channels, backbones.EMBEDDING_DIM)
                                    for channels in (3, 1))
        image_tower.load_state_dict(checkpoint["image_tower"])
        sound_tower.load_state_dict(checkpoint["sound_tower"])
    except Exception as e:  # unreadable, refused (a pickle that would run code), another script's, or damaged
        why = ("refused: it holds Python objects, and loading them could run code" if "GLOBAL" in str(e) else
               str(e) if isinstance(e, ValueError) else  # torch's own messages run to many lines: the first
               f"{type(e).__name__}: {e}".splitlines()[0].split(". ")[0][:100])
        raise data.DataError(f"{path} is not a usable TT_AGG checkpoint ({why}): point --run at a run folder "
                             f"made by {make}") from None
    return image_tower.to(device).eval(), sound_tower.to(device).eval(), checkpoint  # eval: BN's running stats


def pick_query(ds, test, video_id, seed):
    """Position in the test split of the paper's single query: --query's video, or one drawn with the seed
    ("a random image from the test set", 4.4.1)."""
    test_ids = [ds.video_ids[v] for v in test.tolist()]
    if video_id is None:
        return int(torch.randint(len(test), (1,), generator=torch.Generator().manual_seed(seed)))
    if video_id in test_ids:
        return test_ids.index(video_id)
    examples = ", ".join(test_ids[:3])
    if video_id in ds.video_ids:
        split = next(s for s, i in data.SPLITS.items() if i == int(ds.split[ds.video_ids.index(video_id)]))
        raise data.DataError(f"--query {video_id} is a {split} video: the query must be a test image, e.g. "
                             f"{examples}")
    raise data.DataError(f"unknown --query {video_id}: no such video in {ds.path}; test videos are e.g. "
                         f"{examples}")


@torch.no_grad()
def embed(tower, batches):
    """Unit-length embeddings (N, 128) of the batches (B, C, S, S) in order."""
    return F.normalize(torch.cat([tower(x) for x in batches]), dim=1)


def rank(image_embedding, sound_embedding, k, exclude=None):
    """Nearest neighbours by cosine similarity (paper 3.5).

    image_embedding (Q, D) and sound_embedding (L, D), unit length; exclude (Q, L) bool: sounds a query may
    not retrieve. Returns (indices, similarities), each (Q, k): the library positions of each query's k most
    similar sounds, most similar first, and their cosines.
    """
    similarity = image_embedding @ sound_embedding.T  # (Q, L): a cosine, since both are unit length
    if exclude is not None:
        similarity = similarity.masked_fill(exclude, float("-inf"))
    top = similarity.topk(k, dim=1)  # sorted, largest first
    return top.indices, top.values


def write_wav(clip, sample_rate, path):
    """(N,) int16 clip -> mono 16-bit PCM WAV, through data.atomic_write (never half-written)."""
    def write(f):
        with wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(clip.cpu().numpy().astype("<i2").tobytes())  # WAV samples are little-endian
    data.atomic_write(path, write)


def plot_curves(m, source, path):
    """precision_at_k.png: Figure 8's curve for the single query, with the mean +- std over every test
    image and random retrieval beside it."""
    from matplotlib.ticker import MaxNLocator
    plt = metrics.pyplot()
    k = torch.arange(1, m["k"] + 1)
    mean, std = torch.tensor(m["mean"]), torch.tensor(m["std"])
    fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
    ax.fill_between(k, (mean - std).clamp(0, 1), (mean + std).clamp(0, 1), color="tab:blue", alpha=0.2,
                    label=f"± std over the {m['test_images']} test images")
    ax.plot(k, mean, color="tab:blue", label=f"mean over the {m['test_images']} test images")
    ax.plot(k, m["single"], color="tab:orange", marker=".",
            label=f"one test image ({m['query']['video_id']}: {', '.join(m['query']['labels'])}), as in the paper")
    ax.plot(k, m["random"], color="0.4", linestyle="--", label="random retrieval (mean over test images)")
    ax.set_xlim(0.5, m["k"] + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # K counts sounds: no K = 2.5
    ax.set_ylim(-0.02, 1.02)  # a curve at 0 stays visible above the axis
    ax.set_xlabel("K (sounds retrieved)")
    ax.set_ylabel("share of good sounds in the top K")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize=9)  # below the axes: never over a curve
    ax.set_title(f"Figure 8: share of good sounds in the top K, {backbones.BACKBONES[m['backbone']]} TT_AGG, "
                 f"{metrics.source_name(source)}\nlibrary: {library_words(m)}; "
                 f"good: the sound's material is in the frame", fontsize=10)
    metrics.save_png(fig, path)


def plot_sheet(m, frame, spectrograms, path):
    """top5_sheet.png: the query frame, then the five retrieved sounds' spectrograms with their materials,
    framed green when good and red when not. frame (3, S, S) uint8; spectrograms (5, 1, H, W)."""
    plt = metrics.pyplot()
    top = m["top5"]
    fig, axes = plt.subplots(1, len(top) + 1, figsize=(2.9 * (len(top) + 1), 3.6), layout="constrained")
    axes[0].imshow(frame.permute(1, 2, 0).cpu().numpy())
    axes[0].set_title(f"query: {m['query']['video_id']}\nshows: {', '.join(m['query']['labels'])}", fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for ax, hit, s in zip(axes[1:], top, spectrograms):
        ax.imshow(s[0].cpu().numpy(), origin="lower", aspect="auto", cmap="magma", extent=(0, 1, 0, s.shape[-2]))
        color = "tab:green" if hit["good"] else "tab:red"
        own = " (query's video)" if hit["video_id"] == m["query"]["video_id"] else ""
        ax.set_title(f"{hit['rank']}. {hit['material']}: {'good' if hit['good'] else 'not in the frame'}\n"
                     f"{hit['video_id']} clip {hit['clip']}{own}\ncosine {hit['similarity']:.3f}",
                     fontsize=9, color=color)
        for spine in ax.spines.values():
            spine.set_color(color)
            spine.set_linewidth(3)
        ax.set_yticks([])
        ax.set_xlabel("time (s)", fontsize=8)
    axes[1].set_ylabel("mel frequency (low to high)", fontsize=8)
    fig.suptitle(f"Top {len(top)} sounds for one test image, {backbones.BACKBONES[m['backbone']]} TT_AGG "
                 f"(library: {library_words(m)})\nlog-mel spectrograms; green: the sound's material is in the "
                 f"frame (good), red: it is not", fontsize=10)
    metrics.save_png(fig, path)


def library_words(m):
    """'all, 240 sounds, the query's own video included', as the figures say it."""
    if m["library"] == "train":
        return f"train, {m['library_size']} sounds, none from a test video"
    own = "left out" if m["exclude_own_video"] else "included"
    return f"all, {m['library_size']} sounds, the query's own video {own}"


def make_library(ds, library, test, exclude_own_video):
    """The sounds to rank: (sound_video, sound_clip), each (L,), and exclude (Q, L) bool, the sounds each test
    image may not retrieve (its own video's, when asked)."""
    videos = ds.videos("train") if library == "train" else torch.arange(len(ds.video_ids), device=test.device)
    sound_video = videos.repeat_interleave(data.CLIPS_PER_VIDEO)                                     # (L,)
    sound_clip = torch.arange(data.CLIPS_PER_VIDEO, device=test.device).repeat(len(videos))          # (L,)
    exclude = sound_video[None, :] == test[:, None]                                                  # (Q, L)
    return sound_video, sound_clip, exclude if exclude_own_video else torch.zeros_like(exclude)


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        device = data.pick_device(args.device)
        image_tower, sound_tower, checkpoint = load_towers(args.run, device)
        trained_on = checkpoint["args"].get("data")  # None: the default toy dataset
        if args.data is None:  # the dataset the towers were trained on, so that its test split is unseen
            if trained_on is not None and not os.path.exists(trained_on):
                raise data.DataError(f"the run was trained on {trained_on}, which is not there (paths are "
                                     f"relative to where tt_agg.py ran): give the dataset file with --data")
            args.data = trained_on
        ds = data.load(args.data, device)
        test = ds.videos("test")  # (Q,) the query images: every test frame
        query = pick_query(ds, test, args.query, args.seed)
        sound_video, sound_clip, exclude = make_library(ds, args.library, test, args.exclude_own_video)
        library_size = len(sound_video) - int(exclude.sum(1).max())  # the smallest library of any query
        if args.k > library_size:
            raise data.DataError(f"--k {args.k} is above the library size, {library_size} sounds (--library "
                                 f"{args.library}{', less the query video' if exclude.any() else ''})")
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    backbone = checkpoint["backbone"]
    # The train library holds no test video: the query's own sounds are left out whether asked or not.
    own_left_out = args.exclude_own_video or args.library == "train"
    same_file = lambda p: os.path.realpath(p or data.toy_path(**data.TOY_DEFAULTS))
    if same_file(args.data) != same_file(trained_on):
        print(f"note: the towers were trained on {trained_on or 'the default toy dataset'}, retrieving on "
              f"{args.data}: its test images may have been seen in training")
    print(f"{SCRIPT}: {ds.describe()}; device {device}; {backbones.BACKBONES[backbone]} TT_AGG towers from "
          f"{args.run}; library {args.library} ({library_size} sounds), the query's own video "
          f"{'left out' if own_left_out else 'included'}", flush=True)

    # Embed once, in batches: every library sound and every test frame (no flips: train=False).
    positions = torch.arange(len(sound_video), device=device).split(BATCH_SIZE)
    sound_embedding = embed(sound_tower, (ds.spectrograms[sound_video[i], sound_clip[i]]    # (B, 1, S, S)
                                          for i in positions))                              # (L, 128)
    image_embedding = embed(image_tower, (data.image_transform(ds.frames[v], ds.size, train=False)  # (B, 3, S, S)
                                          for v in test.split(BATCH_SIZE)))                 # (Q, 128)
    # At least TOP retrieved, for the sheet, even when --k is smaller.
    top, similarity = rank(image_embedding, sound_embedding, min(max(args.k, TOP), library_size), exclude)

    # Good: the retrieved sound's material is among the frame's labels (4.4.1).
    material = ds.clip_materials[sound_video, sound_clip]      # (L,)
    labels = ds.image_labels[test]                             # (Q, 17)
    good = labels.gather(1, material[top])                     # (Q, n)
    precision = metrics.precision_at_k(good[:, :args.k]).cpu()  # (Q, k)
    single, mean = precision[query], precision.mean(0)
    std = precision.std(0, correction=0)  # the spread of these images (also defined for a single test image)
    # Random retrieval draws from the same library: its expected precision@K is, for every K, the share of good
    # sounds in the query's library; averaged over the test images like `mean`.
    random_share = ((labels[:, material] & ~exclude).sum(1) / (~exclude).sum(1)).cpu()  # (Q,)
    random = [random_share.mean().item()] * args.k

    q = test[query].item()  # the query's video
    chosen = [(sound_video[j].item(), sound_clip[j].item(), material[j].item()) for j in top[query, :TOP].tolist()]
    top5 = [{"rank": r + 1, "video_id": ds.video_ids[v], "clip": c, "material": data.MATERIALS[mat],
             "good": bool(good[query, r]), "similarity": similarity[query, r].item()}
            for r, (v, c, mat) in enumerate(chosen)]
    query_labels = [data.MATERIALS[i] for i in torch.nonzero(labels[query]).flatten().tolist()]
    m = {"script": SCRIPT, "backbone": backbone, "args": vars(args), "data": ds.describe(), "source": ds.source,
         "checkpoint": args.run, "trained_epochs": checkpoint["args"].get("epochs"), "library": args.library,
         "library_size": library_size, "exclude_own_video": own_left_out, "k": args.k,
         "test_images": len(test),
         "query": {"index": query, "video_id": ds.video_ids[q], "labels": query_labels,
                   "random": random_share[query].item()},  # this image's own random baseline
         "single": single.tolist(), "mean": mean.tolist(), "std": std.tolist(), "random": random,
         "table": {str(k): {"single": single[k - 1].item(), "mean": mean[k - 1].item(),
                            "std": std[k - 1].item(), "random": random[k - 1]}
                   for k in sorted({k for k in TABLE_K + [args.k] if k <= args.k})},
         "top5": top5}

    print(f"query: test image {ds.video_ids[q]} (showing {', '.join(query_labels)}); its top {len(top5)} sounds:")
    for hit in top5:
        print(f"  {hit['rank']}. {hit['material']:<12} {'good' if hit['good'] else 'not in the frame':<16} "
              f"{hit['video_id']} clip {hit['clip']}  cosine {hit['similarity']:.3f}")
    print("\n".join(metrics.format_retrieval(m, metrics.source_name(ds.source))))

    # The raw clips, for the WAVs and the sheet: memory-mapped, so only the five clips used are read.
    try:
        clips = torch.load(ds.path, map_location="cpu", weights_only=True, mmap=True)["clips"]  # (V, 10, N)
    except Exception as e:
        parser.exit(2, f"error: could not read the clips of {ds.path} again ({type(e).__name__}): was it "
                       f"replaced while this ran?\n")
    chosen = [clips[v, c] for v, c, _ in chosen]  # TOP x (N,) int16
    out = os.path.join(args.out, f"{SCRIPT}-{backbone}-seed{checkpoint['args'].get('seed', 0)}")
    wavs = os.path.join(out, "top5")
    for old in os.listdir(wavs) if os.path.isdir(wavs) else []:
        if old.endswith(".wav"):  # an earlier query's files would be mistaken for this one's
            os.unlink(os.path.join(wavs, old))
    for hit, clip in zip(top5, chosen):
        write_wav(clip, ds.sample_rate, os.path.join(wavs, f"{hit['rank']}-{hit['material']}.wav"))
    # Drawn at 128 pixels, finer than the toy's 32-pixel model input, so that a reader sees the hit's shape.
    plot_sheet(m, ds.frames[q], data.spectrogram(torch.stack(chosen), ds.sample_rate, 128),
               os.path.join(out, "top5_sheet.png"))
    plot_curves(m, ds.source, os.path.join(out, "precision_at_k.png"))
    metrics.write_json(m, os.path.join(out, "metrics.json"))
    print(f"saved {out}/metrics.json, precision_at_k.png, top5_sheet.png and top5/*.wav")


if __name__ == "__main__":
    main()
