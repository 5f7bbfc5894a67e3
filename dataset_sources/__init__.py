"""Where dataset files come from: the programs behind `python data.py toy` and `python data.py prepare ROOT`.

- toy.py: the toy Greatest Hits, synthesised from the materials' physics, deterministic from a seed;
- greatest_hits.py: the real Greatest Hits archive turned into the same kind of file (the only code of the
  project that decodes video, with PyAV).

Both write the dataset file described in contract.py (Table 1's IDs, the sample rate, the splits, the
file's tensors and their check), which data.py reads too. The folder sits below data.py: data.load calls the
toy generator to build the default toy on first use, and `python data.py toy` / `prepare ROOT` hand over to
these modules. The folder is not named `datasets`:
that is the name of a widely installed package, which a folder of that name would shadow or be shadowed by.
"""

import torch

from dataset_sources.contract import MATERIALS, NUM_MATERIALS, SPLITS


def summary(d):
    """Lines describing a dataset dict: videos per split, materials per frame, hits per material."""
    split = d["split"]
    per_split = ", ".join(f"{s} {int((split == i).sum())}" for s, i in SPLITS.items())
    lines = [
        f"videos: {per_split} ({len(d['video_ids'])} in all)",
        f"frames: {tuple(d['frames'].shape[1:])} uint8; clips: {tuple(d['clips'].shape[1:])} int16 at "
        f"{d['sample_rate']} Hz; {d['image_labels'].sum(1).float().mean():.2f} materials per frame",
    ]
    if "outdoor" in d:
        lines.append(f"scenes: {d['outdoor'].float().mean():.0%} outdoor")
    lines.append("hits per material:           train    val   test   (share of all hits)")
    counts = torch.stack(
        [
            torch.bincount(d["clip_materials"][split == i].flatten(), minlength=NUM_MATERIALS)
            for i in SPLITS.values()
        ]
    )  # (3, 17)
    total = counts.sum().item()
    for i, (name, c) in enumerate(zip(MATERIALS, counts.T.tolist(), strict=True)):
        lines.append(f"  {i:2d} {name:<12} {c[0]:>13d} {c[1]:>6d} {c[2]:>6d}   {sum(c) / total:6.1%}")
    heard = counts.sum(0) > 0  # (17,) the materials of the dataset
    missing = []
    for i, s in enumerate(SPLITS):
        lacking = torch.nonzero(heard & (counts[i] == 0)).flatten().tolist()
        if lacking:
            missing.append(f"{s} lacks {', '.join(MATERIALS[m] for m in lacking)}")
    if missing:
        lines.append("not every material in every split: " + "; ".join(missing))
    else:
        lines.append("every material of the dataset is heard in every split")
    return lines
