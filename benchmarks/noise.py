"""Where a run's spread comes from: the test split's sampling, or training itself.

    python benchmarks/noise.py runs/tt_agg-resnet-seed0 runs/tt_agg-resnet-seed1 runs/tt_agg-resnet-seed2

Each run folder (of sound_only.py or tt_agg.py, on one dataset file) is scored again on its own test split
with its saved towers, and three spreads are printed for its headline accuracy:
- sampling: the standard deviation of its score over random test sets of `--subset` videos, drawn without
  overlap from its test split (the test split's sampling alone: one trained model, other test videos);
- bootstrap: the 95% interval of its score on the whole split (metrics.test_interval);
- training: the standard deviation over the runs given (several seeds scored on one large test set).
The same model scored on a small test set moves by the sampling spread; run to run on a large one, by the
training spread. docs/results.md gives the commands and what they measured.
"""

import argparse
import json
import os
import signal
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project's modules

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import torch

    import backbones
    import data
    import metrics
    import sound_only
    import tt_agg
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)


def correct_by_example(run, device):
    """(correct (N,) bool, video (N,)): each test example of `run` scored again with its saved towers."""
    with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
        record = json.load(f)
    model_path = os.path.join(run, "model.pt")
    checkpoint = torch.load(model_path, map_location=device, weights_only=True)  # tensors only, never code
    args = record["args"]
    ds = data.load(args["data"], device)
    if ds.fingerprint != record["data_fingerprint"]:
        raise SystemExit(f"error: {run} was trained on another dataset than the file now at {args['data']}")
    if record["script"] == "tt_agg":
        model = tt_agg.TwoTower(args["backbone"]).to(device)
        model.image_tower.load_state_dict(checkpoint["image_tower"])
        model.sound_tower.load_state_dict(checkpoint["sound_tower"])
        generator = torch.Generator(device).manual_seed(args["seed"] + 2)  # the run's own test negatives
        examples = tt_agg.make_examples(ds, ds.videos("test"), generator)
        scores, prediction = tt_agg.evaluate(model, ds, examples, 256, "fp32")
        correct = prediction == examples[-1].bool()
    elif record["script"] == "sound_only":
        model = backbones.tower(args["backbone"], 1, data.NUM_MATERIALS).to(device)
        model.load_state_dict(checkpoint["sound_tower"])
        examples = sound_only.make_examples(ds, ds.videos("test"))
        scores, prediction = sound_only.evaluate(model, ds, examples, 256, "fp32")
        correct = prediction == examples[-1]
    else:
        raise SystemExit(f"error: {run} is a run of {record['script']}: give runs of tt_agg or sound_only")
    if abs(scores["accuracy"] - record["test"]["accuracy"]) > 1e-6:
        raise SystemExit(f"error: {run} scores {scores['accuracy']:.4f} again, not its recorded accuracy")
    return correct.cpu(), examples[0].cpu()


def subset_scores(correct, video, subset, repeats, seed):
    """The accuracy on each of `repeats` x (videos // subset) disjoint random test sets of `subset` videos."""
    videos = torch.unique(video)
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(repeats):
        order = videos[torch.randperm(len(videos), generator=generator)]
        for part in order[: len(order) // subset * subset].reshape(-1, subset):
            scores.append(correct[torch.isin(video, part)].float().mean().item())
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders of one script, on one dataset file")
    parser.add_argument("--subset", type=int, default=17, help="videos in each small test set")
    parser.add_argument("--repeats", type=int, default=50, help="random partitions of the test split")
    args = parser.parse_args()
    device = torch.device("cpu")
    whole = []
    print(
        f"{'run':<40} {'accuracy':>9} {'95% interval':>17} {'videos':>6} {'sampling std':>13} {'5-95%':>14}"
    )
    for run in args.runs:
        correct, video = correct_by_example(run, device)
        interval = metrics.test_interval(correct, torch.ones_like(correct), video, "accuracy")
        small = sorted(subset_scores(correct, video, args.subset, args.repeats, seed=0))
        low, high = small[len(small) // 20], small[-len(small) // 20 - 1]  # the 5th and 95th percentiles
        whole.append(correct.float().mean().item())
        print(
            f"{os.path.basename(os.path.normpath(run)):<40} {whole[-1]:>9.4f} "
            f"[{interval['low']:.3f}, {interval['high']:.3f}] {interval['videos']:>6} "
            f"{statistics.stdev(small):>13.4f} {low:>6.3f}-{high:.3f}"
        )
    if len(whole) > 1:
        print(
            f"training: {len(whole)} runs on the whole test split, mean {statistics.mean(whole):.4f}, "
            f"std {statistics.stdev(whole):.4f}"
        )


if __name__ == "__main__":
    main()
