"""The test suite: `pytest test_all.py` (a few minutes on 2 CPU cores; no GPU, no download).

A table of contents, one section per file in the order of the README's file table: data.py, backbones.py,
metrics.py, the four experiments, retrieve.py, dataset_sources/ (the toy, the real archive), study/, and the
project as a whole. Numeric code is checked against an independent reference (scikit-learn, a brute-force
count) or a hand-computed case; every program is run through its command line on data the tests make, one
fixture per kind: `tiny` (a toy dataset), `tt_run` (a trained two-tower run), `retrieved` (its retrieval),
`archive` (a miniature of the real archive, prepared), `study` (a study's run folder). Commands run in this
process (`run_here`), or in a new Python (`run`) where that matters. `check_refused`: exit code 2, one line,
no traceback, and the key facts (a path, a flag) named in it. PyAV is imported only by the tests that make
real video files, so that any other test runs without it.
"""

import ast
import contextlib
import csv
import glob
import io
import itertools
import json
import math
import os
import pickle
import re
import runpy
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import wave

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import backbones
import data
import metrics
import retrieve
from benchmarks import throughput
from dataset_sources import toy
from safe_files import ownership
from study import claims, figures, runs, summary

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["sound_only.py", "visual_only.py", "fc_agg.py", "tt_agg.py"]
PNG = b"\x89PNG\r\n\x1a\n"


def run(*argv, block=()):
    """`python *argv` in a new Python, where the modules in `block` cannot be imported."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "CUDA_VISIBLE_DEVICES": ""}
    if block:
        argv = [
            "-c",
            f"import runpy, sys; sys.modules.update(dict.fromkeys({list(block)})); "
            f"sys.argv = {list(map(str, argv))}; runpy.run_path(sys.argv[0], run_name='__main__')",
        ]
    return subprocess.run(
        [sys.executable, *map(str, argv)], cwd=HERE, env=env, capture_output=True, text=True, timeout=600
    )


def run_here(script, *argv):
    """`python script *argv` in this process (no new Python importing torch): what `run` returns, or the
    exception the program does not handle."""
    out, err, old_argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = [script, *map(str, argv)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(os.path.join(HERE, script), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old_argv
    return subprocess.CompletedProcess(sys.argv, code, out.getvalue(), err.getvalue())


def check_refused(r, *facts):
    """Exit code 2, no traceback, one line "error: ..." on stderr (after data.py prepare's progress bar, if
    any), naming each of `facts`."""
    *before, last = [line for line in r.stderr.replace("\r", "\n").split("\n") if line] or [""]
    assert r.returncode == 2 and "Traceback" not in r.stderr and last.startswith("error: "), r.stderr
    assert all(line.startswith("preparing:") for line in before) and len(last) < 500, r.stderr
    for fact in facts:
        assert str(fact) in last, (fact, last)


def snapshot(*folders):
    """{path: (size, mtime, inode)} of every file under `folders`: a write or a replacement changes it."""
    return {
        os.path.join(root, name): (st.st_size, st.st_mtime_ns, st.st_ino)
        for folder in folders
        for root, _, names in os.walk(folder)
        for name in names
        for st in [os.stat(os.path.join(root, name))]
    }


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny toy dataset file: 24 videos (12 train / 6 val / 6 test) of 32x32 frames."""
    path = tmp_path_factory.mktemp("data") / "tiny.pt"
    ownership.atomic_save(toy.make_toy(videos=24, size=32, seed=1), str(path))
    return str(path)


# --- data.py: Table 1, the dataset file, spectrograms, the image transform, loading, batches ---------------


def test_table_1_and_the_dataset_file_read_checked_and_loaded(tmp_path, tiny):
    assert data.MATERIALS[0] == "plastic" and data.MATERIALS[13] == "dirt" and data.MATERIALS[16] == "carpet"
    assert data.MATERIAL_ID["plastic-bag"] == 12 and len(set(data.MATERIALS)) == data.NUM_MATERIALS == 17
    d = torch.load(tiny, weights_only=True)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    torch.save({**d, "format_version": 0}, tmp_path / "old.pt")
    torch.save({k: v for k, v in d.items() if k != "clips"}, tmp_path / "partial.pt")
    torch.save({**d, "clips": torch.zeros(24, 3, 5)}, tmp_path / "broken.pt")
    for name, message in [
        ("missing.pt", "no dataset file"),
        ("", "is a folder"),
        ("junk.pt", "not a readable"),
        ("old.pt", "format version 0"),
        ("partial.pt", "lacks clips"),
        ("broken.pt", "malformed: clips"),
    ]:
        with pytest.raises(data.DataError, match=message):
            data.read_dataset(str(tmp_path / name))
    ds = data.load(tiny, data.pick_device("cpu"))
    assert ds.spectrograms.shape == (24, 10, 1, 32, 32) and ds.frames.dtype == torch.uint8
    assert sorted(torch.cat([ds.videos(s) for s in ["train", "val", "test"]]).tolist()) == list(range(24))
    assert "24 videos (12 train / 6 val / 6 test)" in ds.describe()
    assert ds.fingerprint == data.fingerprint(d) and re.fullmatch("[0-9a-f]{16}", ds.fingerprint)
    d["clips"][0, 0, 0] += 1
    assert data.fingerprint(d) != ds.fingerprint, "any change of the contents changes the fingerprint"
    if not torch.cuda.is_available():
        assert data.pick_device("auto").type == "cpu"
        with pytest.raises(data.DataError, match="no CUDA GPU"):
            data.pick_device("cuda")


def tone(freq, rate=data.SAMPLE_RATE):
    return torch.sin(2 * math.pi * freq * torch.arange(rate) / rate)


def loudest_row(image):
    """The mel row (frequency) of a (S, S) spectrogram with the most energy over time."""
    return image.mean(1).argmax().item()


def test_the_log_mel_image_is_square_per_clip_normalised_free_of_gain_pitch_shown_as_height():
    rate, size = data.SAMPLE_RATE, 32
    s = data.spectrogram((torch.randn(2, 3, rate) * 3000).to(torch.int16), rate, size)
    assert s.shape == (2, 3, 1, 32, 32) and s.dtype == torch.float32 and torch.isfinite(s).all()
    assert s.mean(dim=(-1, -2)).abs().max() < 0.1 and (s.std(dim=(-1, -2)) - 1).abs().max() < 0.2
    x = tone(440) * 0.1 + torch.randn(rate, generator=torch.Generator().manual_seed(0)) * 0.01
    same = torch.allclose(data.spectrogram(x, rate, size), data.spectrogram(4 * x, rate, size), atol=1e-3)
    assert same, "the recording gain does not change the image"
    low, high = data.spectrogram(torch.stack([tone(300), tone(6000)]), rate, size)[:, 0]
    assert loudest_row(high) > loudest_row(low) + size // 4, "a higher tone lights a higher row"
    click = torch.zeros(rate)
    click[rate // 2] = 1.0  # a click half a second in: the brightest column is the middle one
    assert abs(data.spectrogram(click, rate, size)[0].mean(0).argmax().item() - size // 2) <= 2
    as_int16 = (x * 32767).round().to(torch.int16)  # int16 clips are read as float / 32768
    as_float = as_int16.float() / 32768
    assert torch.allclose(data.spectrogram(as_int16, rate, 48), data.spectrogram(as_float, rate, 48))
    assert data.spectrogram(as_float[None], rate, 48).shape == (1, 1, 48, 48), "another size"


def test_image_transform_scales_resizes_and_flips_in_training_only_as_the_seed_says():
    frames = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    frames[0] = 0
    frames[1] = 255
    x = data.image_transform(frames, 32, train=False)
    assert x.shape == (200, 3, 32, 32) and x[0].eq(-1).all() and x[1].eq(1).all()
    assert torch.equal(x, data.image_transform(frames, 32, train=False))
    assert data.image_transform(frames[:4], 48, train=False).shape == (4, 3, 48, 48)
    torch.manual_seed(0)
    y = data.image_transform(frames, 32, train=True)
    flipped = (y == x.flip(-1)).flatten(1).all(1)
    same = (y == x).flatten(1).all(1)
    assert (flipped | same).all() and 70 < flipped.sum() < 130  # p = 0.5 per image
    torch.manual_seed(0)
    assert torch.equal(y, data.image_transform(frames, 32, train=True)), "the seed repeats the flips"


def test_a_last_batch_of_one_joins_the_one_before():
    assert [len(b) for b in data.batches(torch.arange(12), 11)] == [12]
    assert [len(b) for b in data.batches(torch.arange(25), 8)] == [8, 8, 9]
    assert [len(b) for b in data.batches(torch.arange(24), 8)] == [8, 8, 8], "no change where no batch of one"
    assert torch.equal(torch.cat(data.batches(torch.arange(25), 8)), torch.arange(25))


# --- backbones.py -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", ["resnet", "vgg"])
def test_towers_are_fresh_networks_mapping_frames_and_sounds_to_embeddings_or_logits(backbone):
    torch.manual_seed(0)
    for channels, out, size in [(3, 128, 32), (1, 128, 33), (3, 17, 64)] + [(1, 17, 224)] * (
        backbone == "resnet"
    ):
        net = backbones.tower(backbone, channels, out).eval()
        with torch.no_grad():
            y = net(torch.randn(2, channels, size, size))
        assert y.shape == (2, out) and torch.isfinite(y).all()
    a, b = (backbones.tower(backbone, 3, 128).state_dict() for _ in range(2))
    assert not torch.equal(*(next(v for k, v in t.items() if k.endswith("weight")) for t in (a, b)))
    if backbone == "resnet":
        assert (
            11e6 < backbones.count_parameters(backbones.tower("resnet", 3, 128)) < 12e6
        )  # ResNet-18's 11.2M
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.tower("alexnet", 3, 17)


def test_precision_bf16_autocasts_the_towers_and_uses_channels_last():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert backbones.precision("auto", cpu) == "fp32" and backbones.precision("auto", cuda) == "bf16"
    assert backbones.precision("bf16", cpu) == "bf16" and backbones.precision("fp32", cuda) == "fp32"
    net = backbones.tower("resnet", 3, 17).to(memory_format=backbones.memory_format("bf16"))
    assert net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for precision, dtype in [("bf16", torch.bfloat16), ("fp32", torch.float32)]:
        with backbones.autocast(cpu, precision):
            assert net(torch.randn(2, 3, 32, 32)).dtype == dtype


# --- metrics.py, against scikit-learn or hand-computed cases ----------------------------------------------


@pytest.mark.parametrize("density", [0.1, 0.5, 0.0])
def test_scores_and_confusion_matrix_match_scikit_learn(density):
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 17, (500,), generator=g)
    pred = torch.where(
        torch.rand(500, generator=g) < density, target, torch.randint(0, 17, (500,), generator=g)
    )
    assert metrics.accuracy(pred, target) == pytest.approx(accuracy_score(target, pred))
    assert np.array_equal(
        metrics.confusion_matrix(pred, target, 17).numpy(),
        confusion_matrix(target, pred, labels=list(range(17))),
    )
    target, pred = torch.rand(60, 17, generator=g) < 0.1, torch.rand(60, 17, generator=g) < density
    ours = metrics.binary_scores(pred, target)
    p, r, f, _ = precision_recall_fscore_support(
        target.numpy(), pred.numpy(), average="micro", zero_division=0
    )
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f))
    # The paper's multilabel accuracy counts every label entry (3.3.2), not whole rows (subset accuracy).
    assert ours["accuracy"] == pytest.approx(accuracy_score(target.flatten().numpy(), pred.flatten().numpy()))


def test_coappearance_baselines_and_the_table_row_by_hand():
    labels = torch.tensor([[1, 1, 0], [1, 0, 1], [1, 1, 0]], dtype=torch.bool)
    assert metrics.coappearance(labels).tolist() == [[3, 2, 1], [2, 2, 0], [1, 0, 1]]
    majority = metrics.majority_baseline(torch.tensor([3, 3, 5]), torch.tensor([3, 5, 5, 3]))
    assert majority["accuracy"] == 0.5 and "3" in majority["name"]
    negative = metrics.all_negative_baseline(torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool))
    assert (negative["accuracy"], negative["recall"], negative["f1"]) == (7 / 8, 0, 0)
    chance = metrics.chance_baseline(torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert chance["accuracy"] == chance["precision"] == chance["f1"] == 0.5
    ours = {"accuracy": 0.75, "precision": 0.5, "recall": 1.0, "f1": 2 / 3}
    lines = metrics.format_row(
        "Table 5",
        ours,
        ours,
        metrics.PAPER[("tt_agg", "resnet", False)],
        {"val": chance, "test": chance},
        ["accuracy", "precision", "recall", "f1"],
    )
    text = "\n".join(lines)
    assert lines[0] == "Table 5" and "validation" in lines[1] and "test" in lines[1]
    assert all(s in text for s in ["this run", "0.6667", "0.8040", "0.7428", "baseline: chance (coin flip)"])
    assert len({len(line) for line in lines[1:]}) == 1, "the columns line up"


def test_test_interval_draws_videos_not_examples_and_is_a_95_percent_interval():
    g = torch.Generator().manual_seed(0)
    # 400 videos of 20 pairs; each video's pairs all right or all wrong (a frame the model reads or not).
    video = torch.arange(400).repeat_interleave(20)
    right = (torch.rand(400, generator=g) < 0.7).repeat_interleave(20)
    target = torch.rand(8000, generator=g) < 0.5
    pred = torch.where(right, target, ~target)
    i = metrics.test_interval(pred, target, video, "accuracy")
    acc = metrics.binary_scores(pred, target)["accuracy"]
    assert i["videos"] == 400 and i["low"] < acc < i["high"]
    # The normal approximation over 400 independent videos: 1.96 standard errors of a video's accuracy.
    half = 1.96 * math.sqrt(acc * (1 - acc) / 400)
    assert (i["high"] - i["low"]) / 2 == pytest.approx(half, rel=0.15), "a 95% interval over the videos"
    # Drawing pairs as if independent would be sqrt(20) times narrower: the videos are what is sampled.
    each_own = metrics.test_interval(pred, target, torch.arange(8000), "accuracy")
    assert (each_own["high"] - each_own["low"]) < (i["high"] - i["low"]) / 3
    # Every video alike: no spread at all, and F1 counted from the pooled counts as binary_scores does.
    same = metrics.test_interval(pred[:20].repeat(50), target[:20].repeat(50), video[:1000], "f1")
    assert (
        same["low"]
        == pytest.approx(same["high"])
        == pytest.approx(metrics.binary_scores(pred[:20], target[:20])["f1"])
    )
    assert metrics.test_interval(pred, target, video, "accuracy") == i, "seeded: a run repeats it"
    line = metrics.format_interval({"accuracy": acc}, i)
    assert f"{acc:.4f}" in line and f"[{i['low']:.4f}, {i['high']:.4f}]" in line and "400 test videos" in line


# --- The four experiments, run through their command lines on the tiny dataset ----------------------------
# The functions a student writes in the course kit (tt_agg's TwoTower.forward and make_examples,
# visual_only's positive_weights, data.spectrogram, metrics.precision_at_k and average_precision) are
# checked by the test_exercise_* tests in the teaching section, which grade a student's version.


def train(script, tiny, out, *flags, runner=run_here):
    """Run an experiment script as a user would; returns (stdout, metrics.json, model.pt, run folder)."""
    r = runner(script, "--data", tiny, "--out", out, "--device", "cpu", *flags)
    assert r.returncode == 0, r.stderr
    seed = 0
    if "--seed" in flags:
        seed = flags[flags.index("--seed") + 1]
    backbone = "resnet"
    if "--backbone" in flags:
        backbone = flags[flags.index("--backbone") + 1]
    folder = out / data.run_name(script[:-3], backbone, "--weighted" in flags, seed)
    return (
        r.stdout,
        json.load(open(folder / "metrics.json")),
        torch.load(folder / "model.pt", weights_only=True),
        folder,
    )


@pytest.fixture(scope="session")
def tt_run(tiny, tmp_path_factory):
    """`tt_agg.py --epochs 1 --deterministic` on `tiny`, in a new Python where PyAV cannot be imported
    (training never needs it), trained once for the session: (stdout, metrics.json, model.pt, run folder)."""
    return train(
        "tt_agg.py",
        tiny,
        tmp_path_factory.mktemp("tt_run"),
        "--epochs",
        "1",
        "--deterministic",
        runner=lambda *argv: run(*argv, block=["av"]),
    )


def check_run(m, model, script, backbone, names, epochs, tower, in_channels, out_features):
    """metrics.json's scores beside the paper's and the baseline's, a curve entry per epoch; the saved `tower`
    starts from the seed's initialisation (close to it), and training moved it."""
    assert m["script"] == script and m["backbone"] == backbone and m["args"]["epochs"] == epochs
    for part in ["val", "test"]:
        assert set(names) <= set(m[part]) and all(0 <= m[part][n] <= 1 for n in names)
        assert set(names) <= set(m["paper"][part]) and set(names) <= set(m["baseline"][part])
    assert [c["epoch"] for c in m["curves"]] == list(range(1, epochs + 1))
    i = m["test_interval"]  # the test split's 95% interval of the headline score, over its videos
    assert i["name"] == ("f1" if script == "visual_only" else "accuracy")
    assert i["low"] <= m["test"][i["name"]] <= i["high"] and i["draws"] == 2000
    assert i["videos"] == int(re.search(r"/ (\d+) test\)", m["data"]).group(1)), "every test video drawn"
    for c in m["curves"]:
        assert math.isfinite(c["train_loss"]) and c["samples_per_s"] > 0 and 0 <= c["val_accuracy"] <= 1
    torch.manual_seed(0)
    first = next(k for k in model[tower] if k.endswith("weight"))
    start = backbones.tower(backbone, in_channels, out_features).state_dict()[first]
    assert 0 < (model[tower][first] - start).norm() / start.norm() < 0.5, (
        f"{first} did not train from its seed"
    )


def test_sound_only_trains_prints_its_row_and_saves_the_run(tiny, tmp_path):
    out, m, model, folder = train("sound_only.py", tiny, tmp_path, "--epochs", "2", "--batch-size", 10**9)
    assert m["args"]["batch_size"] == 10**9, "a batch larger than the split"
    assert "sound_only: toy data" in out and out.count("epoch ") == 2 and "clips/s" in out
    assert "Table 2 (sound network), ResNet-18, toy data" in out and "baseline: majority class" in out
    assert "test accuracy" in out and "95% interval" in out and "bootstrap over the 6 test videos" in out
    assert (
        "0.9449" in out and "0.5501" in out and "true\\pred" in out
    )  # the paper's row; the confusion matrix
    check_run(m, model, "sound_only", "resnet", ["accuracy"], 2, "sound_tower", 1, data.NUM_MATERIALS)
    assert (
        np.array(m["test_confusion"]).sum() == 6 * 10 and (folder / "confusion.png").read_bytes()[:8] == PNG
    )
    assert (
        m["data_fingerprint"]
        == model["data_fingerprint"]
        == data.fingerprint(torch.load(tiny, weights_only=True))
    )


def test_visual_only_weighted_and_fc_agg_with_vgg(tiny, tmp_path):
    out, m, model, folder = train(
        "visual_only.py", tiny, tmp_path, "--backbone", "vgg", "--weighted", "--epochs", "1"
    )
    assert "pos_weight per material" in out and "Table 3 (visual network), VGG-11-BN, weighted" in out
    assert "baseline: all negative" in out and "0.7661" in out
    check_run(
        m, model, "visual_only", "vgg", ["accuracy", "precision", "recall", "f1"], 1, "image_tower", 3, 17
    )
    assert m["weighted"] and len(m["pos_weight"]) == 17 and folder.name == "visual_only-vgg-weighted-seed0"
    out, m, model, folder = train("fc_agg.py", tiny, tmp_path, "--backbone", "vgg", "--epochs", "1")
    assert (
        "Table 4 (FC_AGG), VGG-11-BN, toy data" in out
        and "0.9066" in out
        and (folder / "confusion.png").exists()
    )
    check_run(m, model, "fc_agg", "vgg", ["accuracy"], 1, "image_tower", 3, backbones.EMBEDDING_DIM)
    assert set(model) >= {"image_tower", "sound_tower", "classifier", "args"}


def test_tt_agg_trains_without_pyav_and_a_seeded_run_repeats_to_the_last_digit(tt_run, tiny, tmp_path):
    """tt_run was trained with `av` blocked; trained again here with the same seed (initialisation, flips,
    batch order and pairs included), it gives the same numbers exactly."""
    out, m, model, folder = tt_run
    assert "Table 5 (TT_AGG), ResNet-18, toy data" in out and "baseline: chance (coin flip)" in out
    assert "pairs/s" in out and "0.7428" in out and "device cpu (deterministic)" in out.splitlines()[0]
    check_run(
        m, model, "tt_agg", "resnet", ["accuracy", "precision", "recall", "f1"], 1, "image_tower", 3, 128
    )
    assert set(model) >= {"image_tower", "sound_tower", "args"}
    _, again, _, _ = train("tt_agg.py", tiny, tmp_path, "--epochs", "1", "--deterministic")
    assert m["val"] == again["val"] and m["test"] == again["test"]
    assert without_timings(m["curves"]) == without_timings(again["curves"])


def without_timings(curves):
    """A run's curves less what the clock decides."""
    return [{k: v for k, v in c.items() if k not in {"samples_per_s", "elapsed_s"}} for c in curves]


@pytest.mark.parametrize(
    "script, flags",
    [
        ("tt_agg.py", ["--precision", "bf16"]),
        # the largest seed (tt_agg.py seeds its validation and test pairs with seed + 1 and + 2), no
        # momentum, a tiny learning rate (a batch larger than the split: sound_only's test)
        ("tt_agg.py", ["--seed", 2**63 - 1, "--momentum", 0, "--lr", 1e-9]),
        ("visual_only.py", ["--precision", "bf16", "--batch-size", 11]),
    ],
)  # 12 frames: a last batch of one joins in
def test_the_bf16_path_and_flags_at_the_edges_of_their_range_train(script, flags, tiny, tmp_path):
    """bf16 autocast and channels-last, CUDA's default, taken on the CPU for one epoch: losses and scores stay
    fp32 and finite. A run replaces an earlier run folder of its name whole: no stale file is left."""
    seed = 0
    if flags[0] == "--seed":
        seed = flags[1]
    precision = "fp32"
    if "bf16" in flags:
        precision = "bf16"
    name = data.run_name(script[:-3], "resnet", seed=seed)
    (tmp_path / name).mkdir()
    (tmp_path / name / "confusion.png").write_bytes(PNG)
    ownership.write_manifest(str(tmp_path / name), script)  # an earlier run folder of the script
    r = run_here(script, "--data", tiny, "--out", tmp_path, "--device", "cpu", "--epochs", 1, *flags)
    assert r.returncode == 0 and r.stderr == "" and f"device cpu, {precision};" in r.stdout, r.stderr
    m = json.load(open(tmp_path / name / "metrics.json"))
    assert m["args"]["precision"] == precision and m["args"]["seed"] == seed
    assert math.isfinite(m["curves"][0]["train_loss"]) and 0 <= m["test"]["accuracy"] <= 1
    model = torch.load(tmp_path / name / "model.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in model["image_tower"].values() if t.is_floating_point())
    assert sorted(os.listdir(tmp_path / name)) == [ownership.MANIFEST, "metrics.json", "model.pt"]
    assert os.listdir(tmp_path) == [name]


class RunsCode:
    """Pickled, this becomes a call of os.system that makes a marker file: what weights_only loading
    refuses."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_data_and_flags_are_refused_in_one_line(script, tiny, tmp_path):
    """Each --data that is not a dataset file and each flag out of its range, before anything is written; the
    file that would run code is refused without running it."""
    (tmp_path / "notes.pt").write_text("not a dataset\n")
    torch.save({**torch.load(tiny, weights_only=True), "format_version": 0}, tmp_path / "old.pt")
    torch.save({"frames": RunsCode(tmp_path / "ran")}, tmp_path / "evil.pt")
    cases = [
        (["--data", tmp_path / name], tmp_path / name)
        for name in ["missing.pt", "notes.pt", "old.pt", "evil.pt"]
    ]
    cases += [
        ([flag, value], flag)
        for flag, value in [
            ("--epochs", 0),
            ("--batch-size", 0),
            ("--batch-size", -5),
            ("--lr", 0),
            ("--lr", -0.1),
            ("--lr", "inf"),
            ("--lr", "nan"),
            ("--lr", 1e300),
            ("--momentum", -0.5),
            ("--momentum", 1),
            ("--momentum", "nan"),
            ("--batch-size", 1),
            ("--seed", -1),
            ("--seed", 2**64),
            ("--data", ""),
        ]
    ]
    cases += [(["--device", "cuda"], "--device cuda")] * (not torch.cuda.is_available())
    for flags, fact in cases:
        check_refused(run_here(script, "--data", tiny, "--out", tmp_path / "runs", *flags), fact)
    assert not (tmp_path / "ran").exists() and not (tmp_path / "runs").exists()


def tiny_with(**changes):
    """Makes OUT/d.pt: the tiny dataset with `changes` (field: function of the dataset dict) made to it."""

    def make(tmp, tiny):
        d = torch.load(tiny, weights_only=True)
        torch.save({**d, **{k: change(d) for k, change in changes.items()}}, tmp / "d.pt")

    return make


def put(name, make):
    """Makes OUT/name with `make(path)`: something in the way of an output."""
    return lambda tmp, tiny: make(tmp / name)


def stranger_note(path):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text("{}\n")
    ownership.write_manifest(str(path), "tt_agg.py")  # an earlier run of tt_agg.py...
    (path / "notes.txt").write_text("mine\n")  # ...where the user left a note


OUT, D = "{out}", "{out}/d.pt"  # a fresh folder that must not change; the dataset made there
TOY = ["data.py", "toy", "--videos", "10", "--out"]
REFUSED = {  # case: (command line, what to make in OUT first (None: nothing), facts the error line names)
    # an output place that cannot be written, or something there that this program did not write
    "--out is a file": (
        ["sound_only.py", "--out", f"{OUT}/notes.txt"],
        put("notes.txt", lambda p: p.write_text("x")),
        [f"{OUT}/notes.txt"],
    ),
    "--out where nothing can be written": (["fc_agg.py", "--out", "/proc/matsound-runs"], None, ["/proc"]),
    "a run folder holding a file of the user's": (
        ["tt_agg.py", "--out", OUT],
        put("tt_agg-resnet-seed0", stranger_note),
        ["notes.txt"],
    ),
    # an output name that cannot be created: refused before the toy is made, not after
    "--out ending in a slash": ([*TOY, f"{OUT}/new.pt/"], None, ["ends in '/'"]),
    "--out with a 300-byte name": ([*TOY, f"{OUT}/{'n' * 300}.pt"], None, ["255 bytes"]),
    "--out with a byte that is not UTF-8": ([*TOY, f"{OUT}/\udcff.pt"], None, ["UTF-8"]),
    "toy --out a source file": (
        [*TOY, f"{OUT}/data.py"],
        put("data.py", lambda p: shutil.copyfile(os.path.join(HERE, "data.py"), p)),
        [f"{OUT}/data.py"],
    ),
    "toy --out a named pipe": ([*TOY, f"{OUT}/pipe"], put("pipe", os.mkfifo), [f"{OUT}/pipe"]),
    "toy --out a link": (
        [*TOY, f"{OUT}/link.pt"],
        lambda tmp, tiny: os.symlink(tiny, tmp / "link.pt"),
        ["link.pt"],
    ),
    "toy --out a file of another kind": (
        [*TOY, f"{OUT}/metrics.json"],
        put("metrics.json", lambda p: p.write_text("{}\n")),
        ["metrics.json"],
    ),
    "toy --out a file of ours of another kind": (  # a key the kit measured: marked, but not a dataset
        [*TOY, f"{OUT}/key.json"],
        put("key.json", lambda p: p.write_text('{"written_by": "matsound teaching/measure.py"}\n')),
        ["key.json", "written by teaching/measure.py, not data.py"],
    ),
    "toy --out below a file": (
        [*TOY, f"{OUT}/notes.txt/toy.pt"],
        put("notes.txt", lambda p: p.write_text("x")),
        ["notes.txt"],
    ),
    # divergence: a NaN loss, or one step per epoch and a huge learning rate (weights overflow, seen in the
    # outputs)
    "a non-finite loss": (
        ["sound_only.py", "--out", OUT, "--lr", "1e12", "--epochs", "1"],
        None,
        ["the training loss became", "at epoch 1, step"],
    ),
    "one step at --lr 1e20": (
        ["visual_only.py", "--out", OUT, "--batch-size", "100", "--lr", "1e20", "--epochs", "1"],
        None,
        ["NaN or infinite", "--lr"],
    ),
    # dataset files edited or made by a stranger
    "another sample rate": (
        ["sound_only.py", "--data", D],
        tiny_with(sample_rate=lambda d: 44100),
        ["sample_rate", "22050"],
    ),
    "a float sample rate": (
        ["sound_only.py", "--data", D],
        tiny_with(sample_rate=lambda d: 22050.0),
        ["sample_rate"],
    ),
    "half-second clips": (
        ["fc_agg.py", "--data", D],
        tiny_with(clips=lambda d: d["clips"][..., ::2]),
        ["clips"],
    ),
    "ids as a tensor": (
        ["tt_agg.py", "--data", D],
        tiny_with(video_ids=lambda d: torch.arange(24)),
        ["video_ids"],
    ),
    "an id twice": (
        ["visual_only.py", "--data", D],
        tiny_with(video_ids=lambda d: d["video_ids"][:1] * 24),
        ["video_ids"],
    ),
    "zero videos": (
        ["sound_only.py", "--data", D],
        tiny_with(**{k: (lambda d, k=k: d[k][:0]) for k in [*data.TENSORS, "video_ids"]}),
        ["video_ids"],
    ),
    "no validation video": (
        ["visual_only.py", "--data", D],
        tiny_with(split=lambda d: torch.where(d["split"] == 1, 0, d["split"])),
        ["split", "/ 0 /"],
    ),
    "one training video": (
        ["visual_only.py", "--data", D],
        tiny_with(split=lambda d: torch.tensor([0] + [1] * 11 + [2] * 12, dtype=torch.int8)),
        ["split", "1 / 11 / 12"],
    ),
    "16-pixel frames": (
        ["fc_agg.py", "--data", D, "--backbone", "vgg"],
        tiny_with(frames=lambda d: d["frames"][..., :16, :16]),
        ["frames", "32"],
    ),
    "int32 labels": (
        ["visual_only.py", "--data", D],
        tiny_with(image_labels=lambda d: d["image_labels"].int()),
        ["image_labels", "bool"],
    ),
    "a source that is not text": (["tt_agg.py", "--data", D], tiny_with(source=lambda d: 3), ["source"]),
    "a frame showing every material of its split": (
        ["tt_agg.py", "--data", D],
        tiny_with(image_labels=lambda d: d["image_labels"] | (d["split"] == 1)[:, None]),
        ["no negative", "--videos"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_input_beyond_the_handled_cases_is_refused_in_one_line_and_changes_nothing(case, tiny, tmp_path):
    """Exit code 2, one line naming the fact, and nothing on disk written, replaced or removed."""
    command, make, facts = REFUSED[case]
    if make:
        make(tmp_path, tiny)
    argv = [a.format(out=tmp_path) for a in command]
    if argv[0] != "data.py":
        argv = [
            *argv[:1],
            "--data",
            tiny,
            "--out",
            tmp_path / "runs",
            "--device",
            "cpu",
            *argv[1:],
        ]  # later wins

    def listing():
        return snapshot(tmp_path, tiny), sorted(tmp_path.rglob("*"))

    before = listing()
    check_refused(run_here(*argv), *[f.format(out=tmp_path) for f in facts])
    assert listing() == before


def test_ctrl_c_in_a_training_script_exits_130_and_keeps_the_earlier_run(tiny, tmp_path, monkeypatch):
    """Ctrl-C while the run is saved (the figure not yet): exit code 130, one line, the earlier run as it
    was."""
    earlier = tmp_path / "sound_only-resnet-seed0"
    earlier.mkdir()
    (earlier / "metrics.json").write_text('{"earlier": true}\n')
    ownership.write_manifest(str(earlier), "sound_only.py")
    before = snapshot(tmp_path)
    monkeypatch.setattr(ownership, "save_png", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    r = run_here("sound_only.py", "--data", tiny, "--out", tmp_path, "--epochs", "1", "--device", "cpu")
    assert r.returncode == 130 and r.stderr.startswith("interrupted: ") and r.stderr.count("\n") == 1, (
        r.stderr
    )
    assert snapshot(tmp_path) == before and os.listdir(tmp_path) == [earlier.name]


# --- retrieve.py (paper 3.5, 4.4.1, Figure 8) -------------------------------------------------------------

TABLE = [
    "precision@1",
    "precision@5",
    "precision@10",
    "precision@25",
    "precision@50",
    "mAP",
    "R@1",
    "R@5",
    "R@10",
    "median rank",
    "mean rank",
]


@pytest.fixture(scope="session")
def retrieved(tt_run, tmp_path_factory):
    """`python retrieve.py --k 50` on tt_run, in a new Python: (process, metrics.json, run folder)."""
    out = tmp_path_factory.mktemp("retrieve")
    r = run("retrieve.py", "--k", "50", "--run", tt_run[3], "--out", out, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    folder = out / "retrieve-resnet-seed0"
    assert os.listdir(out) == [folder.name] and r.stderr == "", "no temporary folder left behind"
    return r, json.load(open(folder / "metrics.json")), folder


def tower_embeddings(tt_run, ds):
    """The test frames' and every clip's embeddings (6, 128), (240, 128) from tt_run's model.pt, by hand."""
    towers = []
    for channels, key in [(3, "image_tower"), (1, "sound_tower")]:
        towers.append(backbones.tower("resnet", channels, backbones.EMBEDDING_DIM))
        towers[-1].load_state_dict(tt_run[2][key])
    with torch.no_grad():
        image = towers[0].eval()(data.image_transform(ds.frames[ds.videos("test")], ds.size, train=False))
        return F.normalize(image, dim=1), F.normalize(towers[1].eval()(ds.spectrograms.flatten(0, 1)), dim=1)


def test_retrieve_prints_its_table_and_saves_metrics_figures_and_the_top_five_wavs(retrieved, tiny):
    """The printed table (each row: the one image, all images ± std, random), metrics.json's shape, the three
    figures, and the top five sounds as WAVs that are the library clips themselves."""
    r, m, folder = retrieved
    assert "image -> sound, library all (240 sounds), the query's own video included" in r.stdout
    table = r.stdout[r.stdout.index("Retrieval, image -> sound") :].splitlines()
    assert table[1].split() == ["one", "image", "all", "images", "(±", "std)", "random"]
    for name in TABLE:
        line = next(line for line in table if line.startswith(name))
        assert len(re.findall(r"\d+\.\d+", line)) >= 2 and ("± " in line) == (name in TABLE[:6]), line
    assert all(s in r.stdout for s in ["paper (one test image, ResNet)", "Per query material", "top5/*.wav"])
    head = (m["script"], m["backbone"], m["k"], m["library"], m["trained_seed"], m["direction"])
    assert head == ("retrieve", "resnet", 50, "all", 0, "image-to-sound")
    assert (m["queries"], m["test_images"], m["library_size"], m["exclude_own_video"]) == (6, 6, 240, False)
    assert all(len(m[key]) == 50 for key in ["single", "mean", "std", "random"])
    assert list(m["table"]) == TABLE and set(m["table"]["R@5"]) == {"single", "all", "std", "random"}
    for name in ["precision_at_k.png", "top5_sheet.png", "per_material.png"]:
        assert (folder / name).read_bytes()[:8] == PNG
    d = torch.load(tiny, weights_only=True)
    wavs = sorted(f"{h['rank']}-{h['material']}.wav" for h in m["top5"])
    assert sorted(os.listdir(folder / "top5")) == wavs
    for hit in m["top5"]:
        with wave.open(str(folder / "top5" / f"{hit['rank']}-{hit['material']}.wav")) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, d["sample_rate"])
            samples = w.readframes(w.getnframes())
        clip = d["clips"][d["video_ids"].index(hit["video_id"]), hit["clip"]]
        assert samples == clip.numpy().astype("<i2").tobytes(), "the WAV is the library clip itself"


@pytest.fixture(scope="module")
def recount(tt_run, tiny):
    """The retrieval of `retrieved` counted again by hand from model.pt: the cosines (6, 240) of the test
    frames and every clip (no ties), which are relevant, the ranking (a stable argsort), the seeded query."""
    ds = data.load(tiny, torch.device("cpu"))
    test = ds.videos("test")
    image, sound = tower_embeddings(tt_run, ds)
    cosine = (image @ sound.T).numpy()  # (6, 240)
    labels = ds.image_labels[test].numpy()  # (6, 17)
    relevant = labels[:, ds.clip_materials.flatten().numpy()]  # (6, 240)
    order = np.argsort(-cosine, axis=1, kind="stable")  # (6, 240), best first
    precision = np.take_along_axis(relevant, order, axis=1).cumsum(1) / np.arange(1, 241)  # (6, 240)
    query = int(torch.randint(len(test), (1,), generator=torch.Generator().manual_seed(0)))  # --seed 0
    return types.SimpleNamespace(**locals())


def test_retrieve_curves_the_query_and_random_retrieval_match_a_count_by_hand(retrieved, recount):
    m, c = retrieved[1], recount
    assert m["query"]["video_id"] == c.ds.video_ids[c.test[c.query]] and m["query"]["labels"]
    precision = c.precision[:, :50]
    for key, expected in [
        ("mean", precision.mean(0)),
        ("std", precision.std(0)),
        ("single", precision[c.query]),
    ]:
        assert np.allclose(m[key], expected, atol=1e-6), key
    assert m["table"]["precision@10"]["all"] == pytest.approx(m["mean"][9])
    assert m["table"]["precision@50"]["single"] == pytest.approx(m["single"][49])
    share = c.relevant.mean(1)  # the share of good sounds in each test image's library
    assert m["random"] == pytest.approx([share.mean()] * 50)
    assert m["query"]["random"] == pytest.approx(share[c.query])


def test_retrieve_map_recall_and_ranks_of_the_own_recording_match_scikit_learn_and_a_count(
    retrieved, recount
):
    from sklearn.metrics import average_precision_score

    table, c = retrieved[1]["table"], recount
    ap = np.array([average_precision_score(c.relevant[q], c.cosine[q]) for q in range(6)])
    mine = (table["mAP"]["all"], table["mAP"]["std"], table["mAP"]["single"])
    assert mine == pytest.approx((ap.mean(), ap.std(), ap[c.query]))
    randoms = [metrics.random_average_precision(240, r) for r in c.relevant.sum(1)]
    assert table["mAP"]["random"] == pytest.approx(np.mean(randoms))
    own = np.repeat(np.arange(24), 10)[c.order] == c.test.numpy()[:, None]  # (6, 240): own clips, ranked
    first = own.argmax(1) + 1
    for k in [1, 5, 10]:
        assert table[f"R@{k}"]["all"] == pytest.approx((first <= k).mean())
        assert table[f"R@{k}"]["random"] == pytest.approx(1 - math.comb(230, k) / math.comb(240, k))
    assert table["median rank"]["all"] == np.median(first) and table["mean rank"]["all"] == first.mean()
    assert table["median rank"]["single"] == first[c.query] and table["mean rank"]["random"] == 241 / 11


def test_retrieve_per_material_and_the_top_five_match_a_count_by_hand(retrieved, recount):
    from sklearn.metrics import average_precision_score

    m, c = retrieved[1], recount
    ap = np.array([average_precision_score(c.relevant[q], c.cosine[q]) for q in range(6)])
    for row in m["per_material"]:  # an image counts toward each material it shows
        of = c.labels[:, data.MATERIAL_ID[row["material"]]]
        assert row["queries"] == of.sum() and row["ap"] == pytest.approx(ap[of].mean())
        assert row["precision"] == pytest.approx(c.precision[of, 9].mean())
    assert sum(r["queries"] for r in m["per_material"]) == c.labels.sum()
    good = np.take_along_axis(c.relevant, c.order, axis=1)
    assert [h["good"] for h in m["top5"]] == good[c.query, :5].tolist()
    assert all(h["good"] == (h["material"] in m["query"]["labels"]) for h in m["top5"])
    expected = [(c.ds.video_ids[j // 10], j % 10) for j in c.order[c.query, :5].tolist()]
    assert [(h["video_id"], h["clip"]) for h in m["top5"]] == expected
    similarities = [h["similarity"] for h in m["top5"]]
    assert similarities == sorted(similarities, reverse=True) and all(-1 <= s <= 1 for s in similarities)


def test_the_retrieval_table_shows_one_run_or_the_mean_and_sample_std_over_seeds(retrieved):
    m = retrieved[1]
    one = metrics.format_retrieval_table([m])
    assert one[0].startswith("Retrieval, image -> sound") and "one image: " + m["query"]["video_id"] in one[0]
    row = m["table"]["mAP"]
    mine = next(line for line in one if line.startswith("mAP"))
    assert f"{row['single']:.3f}  {row['all']:.3f} ± {row['std']:.3f}" in mine
    seeds = [
        {**m, "trained_seed": s, "table": {**m["table"], "mAP": {**row, "all": v}}}
        for s, v in enumerate([0.2, 0.4, 0.6])
    ]
    three = metrics.format_retrieval_table(seeds)
    assert (
        "seeds 0, 1, 2" in three[0] and "mean ± std over 3 seeds" in three[1] and "one image" not in three[1]
    )
    assert "0.400 ± 0.200" in next(line for line in three if line.startswith("mAP")), (
        "sample std over the seeds"
    )
    assert len(three) == len(one) and [line.split()[0] for line in three[2:]] == [
        line.split()[0] for line in one[2:]
    ]
    older = metrics.format_retrieval_table([{k: v for k, v in m.items() if k not in ("table", "direction")}])
    assert "not measured" in older[-1], "an older metrics.json: no crash"


def brute_force(similarity, relevant):
    """Pessimistic ranks counted one by one: the t-th relevant item (most similar first) ranks t + the number
    of non-relevant items at least as similar. Per query: (precision@K for K = 1..N, AP, first relevant
    rank)."""
    found = []
    for s, rel in zip(similarity.tolist(), relevant.tolist(), strict=True):
        mine = sorted((x for x, good in zip(s, rel, strict=True) if good), reverse=True)
        ranks = [
            t + sum(not good and x >= y for x, good in zip(s, rel, strict=True))
            for t, y in enumerate(mine, 1)
        ]
        found.append(
            (
                [sum(r <= k for r in ranks) / k for k in range(1, len(s) + 1)],
                sum(t / r for t, r in enumerate(ranks, 1)) / len(ranks) if ranks else math.nan,
                ranks[0] if ranks else len(s) + 1,
            )
        )
    return found


def test_ranking_metrics_and_recall_match_a_brute_force_count_and_scikit_learn():
    """On distinct, tied and constant similarities; a query with one relevant item, last, and one with
    none."""
    from sklearn.metrics import average_precision_score

    g = torch.Generator().manual_seed(0)
    relevant = torch.rand(8, 30, generator=g) < 0.3
    relevant[0] = torch.arange(30) == 29  # one relevant item, last in the library
    relevant[1] = False  # none: AP undefined
    distinct = torch.randn(8, 30, generator=g)
    for similarity in [distinct, (torch.randn(8, 30, generator=g) * 2).round() / 2, torch.zeros(8, 30)]:
        precision = metrics.precision_at_k(similarity, relevant, 30)
        ap = metrics.average_precision(similarity, relevant)
        first = metrics.first_relevant_rank(similarity, relevant)
        for q, (p, a, f) in enumerate(brute_force(similarity, relevant)):
            assert precision[q].tolist() == pytest.approx(p) and first[q] == f
            assert math.isnan(a) == math.isnan(ap[q]) and (math.isnan(a) or ap[q].item() == pytest.approx(a))
            for k in [1, 5, 10, 30]:
                assert metrics.recall_at_k(similarity, relevant, k)[q] == (f <= k)
    for q in range(2, 8):  # no ties: scikit-learn's AP
        expected = average_precision_score(relevant[q].numpy(), distinct[q].numpy())
        assert metrics.average_precision(distinct, relevant)[q].item() == pytest.approx(expected)
    assert (metrics.rank(distinct, relevant) == torch.argsort(-distinct, dim=1, stable=True)).all()


def test_ranking_metrics_by_hand_ties_count_against_the_model():
    """Worked by hand; a tie ranks the relevant item after the others, and a constant similarity ranks every
    relevant item last, never above a random ranking."""
    scores = [0.9, 0.1, 0.8, 0.3]  # ranks items 0, 2, 3, 1
    similarity = torch.tensor([scores, [0.2, 0.4, 0.6, 0.8], scores, scores])
    relevant = torch.tensor([[1, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    # query 0: items 0 and 3 relevant (ranks 1 and 3); 1: all; 2: none; 3: item 1 only, ranked last
    p = metrics.precision_at_k(similarity, relevant, 4)
    assert p[:2].flatten().tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5, 1.0, 1.0, 1.0, 1.0])
    assert p[3].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.25])
    assert metrics.precision_at_k(similarity, relevant, 2).shape == (4, 2)
    ap = metrics.average_precision(similarity, relevant)
    assert ap[[0, 1, 3]].tolist() == pytest.approx([(1 + 2 / 3) / 2, 1.0, 0.25]) and torch.isnan(ap[2])
    for relevant in [torch.tensor([[True, False, False]]), torch.tensor([[False, True, False]])]:
        similarity = torch.tensor([[0.9, 0.9, 0.1]])  # the good item tied with a bad one: second, wherever
        assert metrics.average_precision(similarity, relevant).item() == 0.5
        assert metrics.precision_at_k(similarity, relevant, 2).tolist() == [[0.0, 0.5]]
        assert metrics.first_relevant_rank(similarity, relevant).item() == 2
    relevant = torch.rand(8, 30, generator=torch.Generator().manual_seed(0)) < 0.3
    r = relevant.sum(1)
    constant = torch.zeros(8, 30)
    assert (metrics.first_relevant_rank(constant, relevant) == 31 - r).all()
    for q in range(8):
        random = metrics.random_average_precision(30, int(r[q]))
        assert metrics.average_precision(constant, relevant)[q] < random


def test_the_random_baselines_are_the_expectation_over_every_placement_of_the_relevant_items():
    n = 7
    for r in range(1, n + 1):
        placements = [torch.tensor(p) + 1 for p in itertools.combinations(range(n), r)]  # ranks, best first
        ap = np.mean([(torch.arange(1, r + 1) / p).mean().item() for p in placements])
        assert metrics.random_average_precision(n, r) == pytest.approx(ap)
        first = np.array([p[0].item() for p in placements])
        for k in range(1, n + 1):
            assert metrics.random_recall_at_k(n, r, k) == pytest.approx((first <= k).mean())
        mean, median = metrics.random_first_rank(n, r)
        assert mean == pytest.approx(first.mean())
        assert median == min(m for m in range(1, n + 1) if (first <= m).mean() >= 0.5)
    assert math.isnan(metrics.random_average_precision(n, 0)) and metrics.random_average_precision(1, 1) == 1


def test_sound_to_image_ranks_the_test_frames_for_every_test_sound(tt_run, tiny, tmp_path):
    """Each of the 60 test sounds ranks the 6 test frames; mAP by scikit-learn, R@1 of the own frame."""
    from sklearn.metrics import average_precision_score

    flags = ["--direction", "sound-to-image", "--run", tt_run[3], "--out", tmp_path, "--device", "cpu"]
    r = run_here("retrieve.py", *flags)
    assert r.returncode == 0, r.stderr
    assert "sound -> image, library test (6 images)" in r.stdout and "R@5 of the own recording" in r.stdout
    folder = tmp_path / "retrieve-resnet-sound-to-image-seed0"
    m = json.load(open(folder / "metrics.json"))
    assert (m["direction"], m["queries"], m["library_size"], m["k"]) == ("sound-to-image", 60, 6, 6)
    rows = ["precision@1", "precision@5", "precision@6", "mAP", "R@1", "R@5", "median rank", "mean rank"]
    assert list(m["table"]) == rows
    ds = data.load(tiny, torch.device("cpu"))
    test = ds.videos("test")
    image, sound = tower_embeddings(tt_run, ds)
    sounds = (test[:, None] * 10 + torch.arange(10)).flatten()  # (60,) every test clip
    cosine = (sound[sounds] @ image.T).numpy()  # (60, 6)
    relevant = ds.image_labels[test].numpy()[:, ds.clip_materials.flatten()[sounds].numpy()].T  # (60, 6)
    has = relevant.any(1)
    ap = [average_precision_score(relevant[q], cosine[q]) for q in np.nonzero(has)[0]]
    assert m["table"]["mAP"]["all"] == pytest.approx(np.mean(ap))
    assert m["queries_without_relevant"] == (~has).sum()
    own_first = cosine.argmax(1) == np.repeat(np.arange(6), 10)  # the own frame ranked first
    assert (m["table"]["R@1"]["all"], m["table"]["R@1"]["random"]) == pytest.approx((own_first.mean(), 1 / 6))
    assert sum(r["queries"] for r in m["per_material"]) == 60, "a sound counts toward its one material"
    assert os.listdir(folder / "..") == [folder.name] and m["query"]["labels"] == [m["query"]["material"]]
    assert (folder / f"query-{m['query']['material']}.wav").exists() and (folder / "top5_sheet.png").exists()
    assert all("labels" in h and "clip" not in h for h in m["top5"])


def test_make_task_gives_each_query_its_library_less_its_own_video_when_asked(tiny):
    ds = data.load(tiny, torch.device("cpu"))
    test = ds.videos("test")
    (video, clip), (item_video, item_clip), candidates = retrieve.make_task(ds, "image-to-sound", "all", True)
    assert video.tolist() == test.tolist() and clip is None and candidates.shape == (6, 230)
    assert sorted(zip(item_video.tolist(), item_clip.tolist(), strict=True)) == [
        (v, c) for v in range(24) for c in range(10)
    ]
    for q, row in enumerate(candidates.tolist()):
        assert sorted(row) == [j for j in range(240) if item_video[j] != test[q]], (
            "all but the query's own ten"
        )
    assert retrieve.make_task(ds, "image-to-sound", "all", False)[2].shape == (6, 240)
    _, (item_video, _), candidates = retrieve.make_task(ds, "image-to-sound", "train", False)
    assert set(item_video.tolist()) == set(ds.videos("train").tolist()) and candidates.shape == (6, 120)
    (video, clip), (item_video, item_clip), candidates = retrieve.make_task(ds, "sound-to-image", "all", True)
    assert sorted(zip(video.tolist(), clip.tolist(), strict=True)) == [
        (v, c) for v in test.tolist() for c in range(10)
    ]
    assert item_video.tolist() == test.tolist() and item_clip is None and candidates.shape == (60, 5)
    assert (item_video[candidates] != video[:, None]).all(), "all test frames but the sound's own"


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_retrieval_leaves_the_earlier_run_folder_as_it_was(error, tt_run, tmp_path, monkeypatch):
    """The error (or Ctrl-C) comes after metrics.json and the first figure are written: neither appears."""
    earlier = tmp_path / "retrieve-resnet-seed0"
    (earlier / "top5").mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"earlier": true}\n')
    (earlier / "top5" / "1-wood.wav").write_bytes(b"RIFF earlier")
    ownership.write_manifest(str(earlier), "retrieve.py")
    before, saved, save_png = snapshot(tmp_path), [], ownership.save_png

    def fail_second(fig, path):
        saved.append(path)
        if len(saved) == 2:
            metrics.pyplot().close(fig)
            raise error
        save_png(fig, path)

    monkeypatch.setattr(ownership, "save_png", fail_second)
    argv = ["retrieve.py", "--run", tt_run[3], "--out", tmp_path, "--device", "cpu"]
    if isinstance(error, KeyboardInterrupt):
        r = run_here(*argv)
        assert (
            r.returncode == 130 and r.stderr.count("\n") == 1 and "interrupted: nothing written" in r.stderr
        )
    else:
        with pytest.raises(RuntimeError, match="disk full"):
            run_here(*argv)
    assert len(saved) == 2 and snapshot(tmp_path) == before and os.listdir(tmp_path) == [earlier.name]


def test_another_dataset_is_refused_the_fingerprint_recorded_and_the_own_video_left_out(
    retrieved, tt_run, tiny, tmp_path
):
    """Towers recording another dataset's fingerprint are refused; with the right one, --exclude-own-video and
    --query (a test video other than the seeded one) change the library, the table and the random baseline."""
    found, m = data.fingerprint(torch.load(tiny, weights_only=True)), retrieved[1]
    ds = data.load(tiny, torch.device("cpu"))
    video = next(ds.video_ids[v] for v in ds.videos("test") if ds.video_ids[v] != m["query"]["video_id"])
    argv = ["--run", tmp_path / "model.pt", "--data", tiny, "--out", tmp_path / "out", "--device", "cpu"]
    torch.save(
        {**tt_run[2], "data_fingerprint": "0123456789abcdef" if found != "0123456789abcdef" else "0"},
        tmp_path / "model.pt",
    )
    check_refused(run_here("retrieve.py", *argv), tiny)
    assert not (tmp_path / "out").exists()
    torch.save({**tt_run[2], "data_fingerprint": found}, tmp_path / "model.pt")
    r = run_here("retrieve.py", *argv, "--k", "50", "--exclude-own-video", "--query", video)
    assert r.returncode == 0, r.stderr
    assert "library all (230 sounds), the query's own video left out" in r.stdout
    assert "own recording: not measured" in r.stdout and "R@1" not in r.stdout
    left_out = json.load(open(tmp_path / "out" / "retrieve-resnet-seed0" / "metrics.json"))
    assert left_out["data_fingerprint"] == found and left_out["exclude_own_video"] is True
    assert left_out["library_size"] == 230 and left_out["query"]["video_id"] == video
    assert list(left_out["table"]) == TABLE[:6] and all(h["video_id"] != video for h in left_out["top5"])
    assert left_out["random"][0] != pytest.approx(m["random"][0]), "every library lost ten sounds"


# case: (run folder name, what its model.pt holds (None: no file), extra flags, facts the line names)
ERRORS = {
    "no checkpoint yet": ("tt_agg-resnet", None, [], ["model.pt", "python tt_agg.py --backbone resnet"]),
    "no vgg checkpoint yet": ("tt_agg-vgg", None, [], ["python tt_agg.py --backbone vgg"]),
    "a sound_only run": (
        "sound_only-resnet",
        lambda t: {"script": "sound_only", "args": {}},
        [],
        ["sound_only"],
    ),
    "a bare state dict": ("tt_agg-resnet", lambda t: t[2]["image_tower"], [], ["model.pt", "no script"]),
    "vgg towers labelled resnet": (
        "tt_agg-resnet",
        lambda t: {**t[2], "image_tower": backbones.tower("vgg", 3, 128).state_dict()},
        [],
        ["model.pt"],
    ),
    "resnet towers labelled vgg": ("tt_agg-vgg", lambda t: {**t[2], "backbone": "vgg"}, [], ["model.pt"]),
    "an unknown backbone": ("tt_agg-resnet", lambda t: {**t[2], "backbone": "alexnet"}, [], ["alexnet"]),
    "towers with a NaN weight": (
        "tt_agg-resnet",
        lambda t: {
            **t[2],
            "sound_tower": {
                k: w * math.nan if k == "conv1.weight" else w for k, w in t[2]["sound_tower"].items()
            },
        },
        [],
        ["model.pt", "NaN"],
    ),
    "a truncated checkpoint": ("tt_agg-resnet", "truncated", [], ["model.pt"]),
    "a FIFO where model.pt should be": ("tt_agg-resnet", "fifo", [], ["model.pt", "not a regular file"]),
    "a seed that is text": (
        "tt_agg-resnet",
        lambda t: {**t[2], "args": {**t[2]["args"], "seed": "0x1"}},
        [],
        ["args.seed", "0x1"],
    ),
    "a dataset path that is a list": (
        "tt_agg-resnet",
        lambda t: {**t[2], "args": {**t[2]["args"], "data": ["a", "b"]}},
        [],
        ["args.data"],
    ),
    "a pickle that would run code": ("tt_agg-resnet", "evil", [], ["model.pt", "refused"]),
    "--k 0": ("tt_agg-resnet", "copy", ["--k", "0"], ["--k"]),
    "--seed -1": ("tt_agg-resnet", "copy", ["--seed", "-1"], ["--seed"]),
    "--k above the library": ("tt_agg-resnet", "copy", ["--k", "241"], ["--k 241", "240 sounds"]),
    "--k above the library less the query video": (
        "tt_agg-resnet",
        "copy",
        ["--k", "231", "--exclude-own-video"],
        ["--k 231", "230 sounds"],
    ),
    "--k above the train library": (
        "tt_agg-resnet",
        "copy",
        ["--k", "121", "--library", "train"],
        ["--k 121", "120 sounds"],
    ),
    "--k above the test frames": (
        "tt_agg-resnet",
        "copy",
        ["--k", "7", "--direction", "sound-to-image"],
        ["--k 7", "6 images"],
    ),
    "--library train for sound-to-image": (
        "tt_agg-resnet",
        "copy",
        ["--library", "train", "--direction", "sound-to-image"],
        ["--library", "train"],
    ),
    "an unknown --query": ("tt_agg-resnet", "copy", ["--query", "no-such-video"], ["--query no-such-video"]),
    "a --query that is not a test image": (
        "tt_agg-resnet",
        "copy",
        ["--query", "toy-1-0001"],
        ["toy-1-0001", "train"],
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_retrieve_refuses_in_one_line_and_touches_nothing(case, tt_run, tmp_path):
    """Nothing printed, and nothing written or removed: an earlier retrieval's results survive a failed
    one."""
    name, content, flags, facts = ERRORS[case]
    folder = tmp_path / "runs" / name
    folder.mkdir(parents=True)
    run_flag = tt_run[3] / "model.pt" if content == "copy" else folder  # --run also takes a model.pt
    if content == "truncated":  # an interrupted copy: the first megabyte of the good checkpoint
        (folder / "model.pt").write_bytes((tt_run[3] / "model.pt").read_bytes()[: 2**20])
    elif content == "evil":
        torch.save({"script": "tt_agg", "image_tower": RunsCode(tmp_path / "MARKER")}, folder / "model.pt")
    elif content == "fifo":  # reading it would wait for a writer forever
        os.mkfifo(folder / "model.pt")
    elif content not in (None, "copy"):
        torch.save(content(tt_run), folder / "model.pt")
    earlier = tmp_path / "out" / "retrieve-resnet-seed0"
    (earlier / "top5").mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"earlier": true}\n')
    (earlier / "top5" / "1-wood.wav").write_bytes(b"RIFF earlier")
    ownership.write_manifest(str(earlier), "retrieve.py")
    before = snapshot(tmp_path, tt_run[3])
    r = run_here("retrieve.py", "--run", run_flag, "--out", tmp_path / "out", "--device", "cpu", *flags)
    check_refused(r, *facts)
    assert r.stdout == "" and snapshot(tmp_path, tt_run[3]) == before and not (tmp_path / "MARKER").exists()


def test_a_plain_pickle_checkpoint_is_refused_without_a_warning(tmp_path):
    """pickle.dump's model.pt makes torch warn on stderr: not shown. In a new Python, where a warning shows
    once."""
    (tmp_path / "tt_agg-resnet").mkdir()
    with open(tmp_path / "tt_agg-resnet" / "model.pt", "wb") as f:
        pickle.dump({"script": "tt_agg", "image_tower": RunsCode(tmp_path / "MARKER")}, f)
    r = run("retrieve.py", "--run", tmp_path / "tt_agg-resnet", "--out", tmp_path / "out", "--device", "cpu")
    check_refused(r, tmp_path / "tt_agg-resnet" / "model.pt", "python tt_agg.py --backbone resnet")
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "out").exists()


# --- safe_files/ownership.py: nothing half-written; only what the project can prove it wrote is replaced ---


def failing_write(error):
    """A writer (for ownership.atomic_write, or in torch.save's place) that writes part of a file, then
    fails."""

    def write(*obj_and_file):
        obj_and_file[-1].write(b"PK\x03\x04 half a file")
        raise error

    return write


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_intact_and_no_temporary_file(tmp_path, error):
    """Every file goes through ownership.atomic_write: datasets, checkpoints (atomic_save), metrics.json,
    figures, WAVs."""
    path = tmp_path / "d.pt"
    dataset_like = {"written_by": "matsound data.py", "source": "toy", "a": torch.arange(5)}
    ownership.atomic_save(dataset_like, str(path))  # a dataset file: ours by its content
    before = path.read_bytes()
    with pytest.raises(type(error)):
        ownership.atomic_write(str(path), failing_write(error), program="data.py")
    with pytest.raises((AttributeError, pickle.PicklingError)):  # a lambda cannot be pickled
        ownership.atomic_save({**dataset_like, "a": lambda: 0}, str(path))  # so torch.save fails halfway
    ours = {"written_by": "matsound test", "a": 1}
    ownership.write_json(ours, str(tmp_path / "metrics.json"))
    with pytest.raises(TypeError):
        ownership.write_json({"a": object()}, str(tmp_path / "metrics.json"))
    assert path.read_bytes() == before and json.load(open(tmp_path / "metrics.json")) == ours
    assert sorted(os.listdir(tmp_path)) == ["d.pt", "metrics.json"]


def contents(folder):
    """{relative path: bytes, or "-> target" for a link} of everything under `folder`, exactly."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            found[rel] = f"-> {os.readlink(path)}" if os.path.islink(path) else open(path, "rb").read()
    return found


USERS_FILES = {  # files a user keeps beside runs, which begin like files the project writes (zip, JSON)
    "report.docx": b"PK\x03\x04 a word document",
    "grades.xlsx": b"PK\x03\x04 a spreadsheet",
    "notes.json": b'{"mine": true}\n',
}


@pytest.mark.parametrize("name", list(USERS_FILES))
def test_a_run_folder_holding_a_users_file_is_left_byte_for_byte(name, tiny, tmp_path):
    """An earlier run folder of ours (its manifest names metrics.json) where the user put a file of a kind the
    project also writes: the run is refused in one line before training, and nothing changes. Catches
    ownership judged by a file's first bytes (a .docx is a zip, like torch.save's files)."""
    folder = tmp_path / "sound_only-resnet-seed0"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"earlier": true}\n')
    ownership.write_manifest(str(folder), "sound_only.py")
    (folder / name).write_bytes(USERS_FILES[name])
    before = contents(tmp_path)
    r = run_here("sound_only.py", "--data", tiny, "--out", tmp_path, "--epochs", 1, "--device", "cpu")
    check_refused(r, name)
    assert contents(tmp_path) == before


def test_a_folder_without_the_manifest_or_a_link_is_never_replaced(tiny, tmp_path):
    """A folder of the run's name that carries no manifest (the user's, or made by hand) and a run name that
    is a link to another folder: both refused, both untouched, the link not followed."""
    (tmp_path / "out" / "sound_only-resnet-seed0").mkdir(parents=True)
    (tmp_path / "out" / "sound_only-resnet-seed0" / "metrics.json").write_text('{"written": "by hand"}\n')
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "metrics.json").write_text('{"elsewhere": true}\n')
    ownership.write_manifest(str(tmp_path / "elsewhere"), "fc_agg.py")  # ours, but reached through a link
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "fc_agg-resnet-seed0")
    before = contents(tmp_path)
    for script, why in [("sound_only.py", ownership.MANIFEST), ("fc_agg.py", "is a link")]:
        r = run_here(script, "--data", tiny, "--out", tmp_path / "out", "--epochs", 1, "--device", "cpu")
        check_refused(r, why)
    assert contents(tmp_path) == before


def test_a_file_that_appears_while_a_folder_is_written_stops_the_swap(tmp_path):
    """atomic_folder checks the earlier folder again before replacing it: a file the user put there meanwhile
    keeps the earlier folder whole, and the new one is dropped (no temporary folder left)."""
    out = tmp_path / "run"
    with ownership.atomic_folder(str(out), "test") as folder:
        open(os.path.join(folder, "metrics.json"), "w").write("{}\n")
    before = contents(tmp_path)
    with pytest.raises(data.DataError, match="grades.xlsx"):
        with ownership.atomic_folder(str(out), "test") as folder:
            open(os.path.join(folder, "metrics.json"), "w").write('{"new": 1}\n')
            (out / "grades.xlsx").write_bytes(USERS_FILES["grades.xlsx"])
    assert contents(tmp_path) == {**before, "run/grades.xlsx": USERS_FILES["grades.xlsx"]}
    with ownership.atomic_folder(
        str(tmp_path / "other"), "test"
    ) as folder:  # and an ordinary replacement works
        (tmp_path / "other_file").write_text("not in the folder")
    assert sorted(os.listdir(tmp_path)) == ["other", "other_file", "run"]


def test_single_files_are_ours_by_their_own_content_naming_the_program_that_replaces_them(tmp_path):
    """owned(path, PROGRAM): a dataset file or a JSON object "written_by" "matsound PROGRAM", a text whose
    first line is "<!-- written by matsound: PROGRAM -->", PROGRAM a .py file of the project, and only for
    that PROGRAM (a file of ours of another kind is not this program's to replace); not a user's JSON, zip,
    text or link, nor a look-alike ("matsound-fan club", "NOT written by matsound", a torch dict with the
    dataset's keys), nor a file named by its folder's manifest (a folder is replaced whole, or not at all)."""
    ours = {"d.pt": "data.py", "times.json": "study/run.py", "key.md": "teaching/measure.py"}
    ownership.atomic_save({"written_by": "matsound data.py", "a": torch.arange(3)}, str(tmp_path / "d.pt"))
    (tmp_path / "times.json").write_bytes(b'{"written_by": "matsound study/run.py"}\n')
    (tmp_path / "key.md").write_bytes(b"<!-- written by matsound: teaching/measure.py -->\n# Key\n")
    for name, body in USERS_FILES.items():
        (tmp_path / name).write_bytes(body)
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not a dataset")
    torch.save({"format_version": data.FORMAT_VERSION, "source": "toy"}, tmp_path / "users.pt")
    (tmp_path / "roster.json").write_text('{"written_by": "matsound-fan club roster"}')
    (tmp_path / "fans.json").write_text('{"written_by": "matsound fan club"}')
    (tmp_path / "essay.txt").write_text("NOT written by matsound\n")
    os.symlink(tmp_path / "d.pt", tmp_path / "link.pt")
    for program in [*ours.values(), "retrieve.py"]:
        found = [n for n in sorted(os.listdir(tmp_path)) if ownership.owned(str(tmp_path / n), program)]
        assert found == [n for n, p in ours.items() if p == program], program
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"PK\x03\x04 a checkpoint")
    ownership.write_manifest(str(folder), "tt_agg.py")
    assert not ownership.owned(str(folder / "model.pt"))


def test_outputs_inside_the_projects_sources_are_refused_links_resolved(tmp_path):
    """check_outside_project: the project's own folders (and a link into them) are refused; its ignored output
    folders and anywhere outside are not."""
    os.symlink(os.path.join(HERE, "dataset_sources"), tmp_path / "link")
    for inside in [HERE, os.path.join(HERE, "dataset_sources", "student"), str(tmp_path / "link" / "copy")]:
        with pytest.raises(data.DataError, match="inside the project's sources"):
            ownership.check_outside_project(inside)
    for fine in [os.path.join(HERE, "runs", "x"), os.path.join(HERE, "teaching-runs"), str(tmp_path / "x")]:
        ownership.check_outside_project(fine)


def test_the_summary_never_writes_through_a_link_or_over_a_users_figures(tmp_path):
    """`python study/summary.py RUNS` with RUNS/figures a link to the user's folder, or a folder of the
    user's: refused in one line before reading the runs; the user's PNG unchanged."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "figure5_confusion.png").write_bytes(PNG + b" the user's own figure")
    (tmp_path / "runs").mkdir()
    os.symlink(tmp_path / "mine", tmp_path / "runs" / "figures")
    (tmp_path / "runs2" / "figures").mkdir(parents=True)
    (tmp_path / "runs2" / "figures" / "figure5_confusion.png").write_bytes(PNG + b" another")
    before = contents(tmp_path)
    check_refused(run_here("study/summary.py", tmp_path / "runs"), "is a link")
    check_refused(run_here("study/summary.py", tmp_path / "runs2"), ownership.MANIFEST)
    assert contents(tmp_path) == before


def figures_of(folder, program="study/summary.py", **edits):
    """RUNS/figures as the summary wrote it (two PNGs and their manifest), then `edits` made to its manifest's
    entries ({name: None} drops one, {name: record} sets one); returns the folder."""
    figures = folder / "figures"
    figures.mkdir(parents=True)
    for name in ["figure2_class_distribution.png", "figure5_confusion.png"]:
        (figures / name).write_bytes(PNG + name.encode())
    ownership.write_manifest(str(figures), program)
    manifest = json.loads((figures / ownership.MANIFEST).read_text())
    for name, record in edits.items():
        manifest["files"].pop(name.replace("__", "/"), None)
        if record:
            manifest["files"][name] = record
    (figures / ownership.MANIFEST).write_text(json.dumps(manifest))
    return figures


def edit_figures(tmp_path, case):
    """A figures folder whose proof fails in one way (MANIFEST_CASES); returns the fact its refusal names."""
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("years of work")
    record = {"size": thesis.stat().st_size, "sha256": ownership.sha256(str(thesis))}
    runs = tmp_path / "runs"
    if case == "names a file outside":
        figures_of(runs, **{"../../thesis.tex": record})
    elif case == "names an absolute path":
        figures_of(runs, **{str(thesis): record})
    elif case == "copied beside the user's own figures":
        figures = figures_of(runs)
        (figures / "figure5_confusion.png").write_bytes(PNG + b" the user's hand-edited figure")
        return "figure5_confusion.png"
    elif case == "an extra file":
        (figures_of(runs) / "notes.txt").write_text("mine")
        return "notes.txt"
    elif case == "a link inside":
        os.symlink(thesis, figures_of(runs) / "figure9_tt_agg_vs_visual.png")
        return "is a link"
    elif case == "another program's":
        figures_of(runs, program="tt_agg.py")
    return ownership.MANIFEST


MANIFEST_CASES = [
    "names a file outside",
    "names an absolute path",
    "copied beside the user's own figures",
    "an extra file",
    "a link inside",
    "another program's",
]


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_a_folder_is_replaced_only_when_its_manifest_proves_every_file(case, tmp_path):
    """A folder's manifest is proof only when the same program wrote it, it names plain paths inside the
    folder with their sizes and hashes, and the folder holds exactly those files: otherwise
    `study/summary.py RUNS` refuses RUNS/figures in one line, and nothing changes (the user's thesis, named
    in a forged manifest, included)."""
    fact = edit_figures(tmp_path, case)
    before = contents(tmp_path)
    check_refused(run_here("study/summary.py", tmp_path / "runs"), fact)
    assert contents(tmp_path) == before


STUDY = os.path.join("study", "run.py")


@pytest.mark.parametrize(
    "flags, fact",
    [
        (["--seeds", "-1"], "--seeds"),
        (["--seeds", "0", "0"], "distinct"),
        (["--epochs", "0"], "--epochs"),
        (["--k", "0"], "--k"),
        (["--device", "cuda"], "--device cuda"),
        (["--data", "missing.pt"], "missing.pt"),
        (["--out", os.path.join(HERE, "docs")], "inside the project's sources"),
        (["--out", "{out}"], "study_times.json"),  # the user's study_times.json
        (["--out", "{out}/linked"], "study-logs"),  # study-logs a link
        (["--out", "{out}/later", "--seeds", "0", "1"], "visual_only-vgg-seed1"),  # the 18th run's folder
    ],
)
def test_the_study_refuses_bad_arguments_and_what_is_not_its_own_before_any_run(flags, fact, tmp_path):
    """One line, exit 2, before the first run starts: nothing written, the user's files unchanged."""
    (tmp_path / "study_times.json").write_text('{"my": "times"}\n')
    (tmp_path / "linked").mkdir()
    os.symlink(tmp_path, tmp_path / "linked" / "study-logs")
    (tmp_path / "later" / "visual_only-vgg-seed1").mkdir(parents=True)  # a folder of the user's, in the way
    (tmp_path / "later" / "visual_only-vgg-seed1" / "notes.txt").write_text("mine")
    before = contents(tmp_path)
    flags = [f.replace("{out}", str(tmp_path)) for f in flags]
    r = run_here(STUDY, "--device", "cpu", "--out", tmp_path / "new", *flags)
    check_refused(r, fact)
    assert r.stdout == "" and contents(tmp_path) == before


def test_a_failed_run_ends_the_study_in_one_line_naming_the_command_and_its_log(tmp_path):
    """A run that fails (here: a dataset file that is not one) stops the study: one line naming the command
    and its log, which holds the run's own error; study_times.json records it, marked as the study's own."""
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 not a dataset")
    out = tmp_path / "out"
    r = run(STUDY, "--seeds", "0", "--epochs", "1", "--data", tmp_path / "broken.pt", "--out", out)
    last = r.stderr.strip().split("\n")[-1]
    assert r.returncode == 1 and "Traceback" not in r.stderr and "python sound_only.py" in last, r.stderr
    log = last.split("its log: ")[1]
    assert os.path.isfile(log) and "not a readable dataset file" in open(log).read()
    times = json.load(open(out / "study_times.json"))
    assert times["written_by"].startswith("matsound") and times["runs"][0]["returncode"] == 2
    assert sorted(os.listdir(out)) == ["study-logs", "study_times.json"], "no run folder, no temporary folder"


def programs():
    """Every program of the project: its .py files with a __main__ block, as paths from the project folder."""
    files = [name for name in os.listdir(HERE) if name.endswith(".py") and not name.startswith("test_")]
    files += [
        os.path.join(f, name)
        for f in ["study", "teaching", "benchmarks"]
        for name in os.listdir(os.path.join(HERE, f))
    ]
    main = 'if __name__ == "__main__":'
    return sorted(f for f in files if f.endswith(".py") and main in open(os.path.join(HERE, f)).read())


def test_every_program_is_found():
    """The list below is not empty by mistake: the four experiment scripts and the study are in it."""
    assert set(SCRIPTS + ["retrieve.py", "data.py", STUDY, "teaching/grade.py"]) <= set(programs())


@pytest.mark.parametrize(
    "program, how",
    [(p, signal.SIGTERM) for p in programs()] + [(p, signal.SIGINT) for p in ["tt_agg.py", STUDY]],
    ids=lambda x: {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}.get(x, x),
)
def test_a_program_stopped_while_torch_loads_says_one_line(program, how, tmp_path):
    """SIGTERM (every program) or Ctrl-C (two: the handler is Python's own) in a program's first seconds,
    while torch loads: exit code 130, one line on stderr, no traceback, nothing written. A stand-in torch,
    found first on the path, says when loading has begun and then takes its time, as the real one does for
    seconds on a slow machine."""
    stand_in = tmp_path / "path" / "torch"
    stand_in.mkdir(parents=True)
    loading = tmp_path / "loading"
    (stand_in / "__init__.py").write_text(
        f"import pathlib, time\npathlib.Path({str(loading)!r}).touch()\ntime.sleep(60)\n"
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "path"), "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [sys.executable, os.path.join(HERE, program)]
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not loading.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loading.exists(), f"{program} did not begin to load torch: {p.communicate()}"
        p.send_signal(how)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert (p.returncode, out, err) == (130, "", "interrupted while starting: nothing written\n")
    assert os.listdir(cwd) == []


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_ctrl_c_or_sigterm_ends_the_study_in_one_line_and_leaves_nothing_half_written(how, tiny, tmp_path):
    """Ctrl-C (SIGINT to the study and its run, as a terminal sends it) or SIGTERM (to the study alone, as
    `kill` or a scheduler sends it) while the first run trains: exit code 130, one line, no run left training
    (the study waits for it, so a run that went on would outlast the timeout), nothing half-written."""
    import signal

    out = tmp_path / "out"
    argv = [sys.executable, os.path.join(HERE, STUDY), "--seeds", "0", "--epochs", "30", "--data", tiny]
    process = subprocess.Popen(
        [*map(str, argv), "--out", str(out), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's program starts
    )
    for line in process.stdout:
        if line.startswith("epoch  1/30"):  # the first run is training
            break
    if how == "Ctrl-C":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.startswith("interrupted: ") and err.count("\n") == 1, err
    assert not os.path.exists(out) or os.listdir(out) == [], "no log folder, no run, no temporary folder"


def test_a_second_writer_of_the_same_out_is_refused_in_one_line(tt_run, tmp_path, monkeypatch):
    """Another retrieve.py writes the same --out while this one runs (simulated: the folder appears, made as
    retrieve.py makes it, while this one draws its figures): this one is refused in one line, and the other's
    folder is left as it is, not replaced."""
    out = tmp_path / "runs" / "retrieve-resnet-seed0"
    drawn = metrics.per_material_figure

    def the_other_program_saves(m):
        out.mkdir(parents=True)
        (out / "metrics.json").write_text('{"the other": true}\n')
        ownership.write_manifest(str(out), "retrieve.py")
        return drawn(m)

    monkeypatch.setattr(metrics, "per_material_figure", the_other_program_saves)
    r = run_here("retrieve.py", "--run", tt_run[3], "--out", tmp_path / "runs", "--device", "cpu")
    check_refused(r, out, "another program")
    assert json.loads((out / "metrics.json").read_text()) == {"the other": True}
    assert sorted(os.listdir(tmp_path / "runs")) == ["retrieve-resnet-seed0"]


# --- dataset_sources/toy.py: `python data.py toy` ---------------------------------------------------------


def test_toy_follows_the_contract_is_deterministic_and_looks_like_the_papers_data(tiny):
    d = torch.load(tiny, weights_only=True)
    data.check_dataset(d)
    assert d["frames"].shape == (24, 3, 32, 32) and d["clips"].shape == (24, 10, data.SAMPLE_RATE)
    assert len(set(d["video_ids"])) == 24 and d["source"] == "toy"
    assert [int((d["split"] == s).sum()) for s in range(3)] == list(toy.split_sizes(24))
    assert toy.split_sizes(977) == (586, 147, 244) and toy.split_sizes(70) == (36, 17, 17)
    for videos in [10, 11, 24, 160, 500]:
        assert sum(toy.split_sizes(videos)) == videos and min(toy.split_sizes(videos)) >= 1
    labels, mats = d["image_labels"], d["clip_materials"]
    assert labels.sum(1).min() >= 1 and labels.sum(1).max() <= 3
    for v in range(24):
        assert set(mats[v].tolist()) == set(torch.nonzero(labels[v]).flatten().tolist()), "heard = in view"
    clips, n = d["clips"].float(), data.SAMPLE_RATE  # the hit at each clip's centre: almost nothing before it
    before = clips[..., : n // 2 - int(0.2 * n)].abs().mean(-1)
    onset = clips[..., n // 2 : n // 2 + int(0.02 * n)].abs().mean(-1)
    assert (onset > before).float().mean() > 0.9  # a neighbouring hit may come before the centre, rarely
    a, b, other = (toy.make_toy(videos=10, size=32, seed=seed) for seed in [1, 1, 4])
    assert all(torch.equal(a[key], b[key]) for key in data.TENSORS) and not torch.equal(
        a["clips"], other["clips"]
    )
    # Paper 3.1, Figure 2: 64% outdoor, ~1.7 materials a frame, wood and metal common, dirt rare, all in every
    # split
    d = toy.make_toy(videos=120, size=32, seed=0)
    assert 0.5 < d["outdoor"].float().mean() < 0.78 and 1.5 < d["image_labels"].sum(1).float().mean() < 1.95
    share = torch.bincount(d["clip_materials"].flatten(), minlength=17).float() / d["clip_materials"].numel()
    top = share.argsort(descending=True)[:4].tolist()
    assert data.MATERIAL_ID["wood"] in top and data.MATERIAL_ID["metal"] in top
    assert share[data.MATERIAL_ID["dirt"]] < 0.03 and min(toy.split_sizes(120)) >= 17
    for s in range(3):
        assert d["image_labels"][d["split"] == s].any(0).all(), f"split {s} lacks a material"
        assert torch.bincount(d["clip_materials"][d["split"] == s].flatten(), minlength=17).min() >= 1


def test_toy_splits_are_given_or_shared_out_and_toys_of_one_seed_share_their_test_videos(tmp_path):
    a = toy.make_toy(splits=(3, 2, 4), size=32, seed=2)
    b = toy.make_toy(splits=(6, 2, 4), size=32, seed=2)
    assert a["split"].tolist() == [2] * 4 + [1] * 2 + [0] * 3
    for key in data.TENSORS:  # the test and validation videos are the same, whatever the training size
        assert torch.equal(a[key][:6], b[key][:6]), key
    assert not torch.equal(a["clips"][6:9], toy.make_toy(splits=(3, 2, 4), size=32, seed=3)["clips"][6:9])
    r = run("data.py", "toy", "--splits", "5", "3", "2", "--out", tmp_path / "toy.pt")
    assert r.returncode == 0, r.stderr
    assert "train 5, val 3, test 2" in r.stdout
    assert data.toy_path((5, 3, 2), 32, 0) == os.path.join("data", "toy-5-3-2-s32-seed0.pt")
    check_refused(
        run_here("data.py", "toy", "--splits", "5", "0", "2", "--out", tmp_path / "bad.pt"), "--splits"
    )
    assert os.listdir(tmp_path) == ["toy.pt"]


def test_data_py_toy_builds_a_file_prints_what_it_built_and_refuses_sizes_out_of_range(tmp_path):
    r = run("data.py", "toy", "--videos", "12", "--size", "33", "--seed", "5", "--out", tmp_path / "toy.pt")
    assert r.returncode == 0, r.stderr
    assert "train 6, val 3, test 3" in r.stdout and "hits per material" in r.stdout and "wood" in r.stdout
    assert "not every material in every split" in r.stdout  # 12 videos cannot show 17 materials thrice
    d = data.read_dataset(str(tmp_path / "toy.pt"))
    assert len(d["video_ids"]) == 12 and d["seed"] == 5 and d["frames"].shape[-1] == 33
    for flags, fact in [
        (["--size", "16"], "--size 16"),
        (["--videos", "9"], "--videos 9"),
        (["--seed", "-1"], "--seed"),
        (["--videos", 10**12], "--videos 1000000000000"),
    ]:
        check_refused(run_here("data.py", "toy", *flags, "--out", tmp_path / "bad.pt"), fact)
    assert os.listdir(tmp_path) == ["toy.pt"]


# --- dataset_sources/greatest_hits.py: `python data.py prepare ROOT`, on a miniature archive -------------
# As greatest_hits.py's docstring describes it: the nested vis-data-256/vis-data-256/ folder with train.txt
# and
# test.txt, and per recording a 96 kHz wav (stereo or mono; 16-bit, 24-bit or float), a 32x24 h264 mp4 (a key
# frame every 3 frames, so that seeking matters) whose frame k has colour PALETTE[k], and a `_times.txt` with
# hits, scratches and `None` lines.

RATE, SECONDS, FPS = (
    96_000,
    2.5,
    4,
)  # the real wav files' rate; every recording lasts 2.5 s; frame k from k/4 s
PALETTE = [
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
    (0, 0, 0),
    (128, 128, 128),
    (255, 128, 0),
]
BACKGROUND, CLICK = (0.2, 0.1), 0.7  # A: a steady left/right level (0.15 in mono); a 0.2 ms click at each hit

A = "2015-02-16-16-49-06"  # train: 3 hits (padded), clicks at the hits, near both ends
B = "2015-03-01-10-00-00"  # train: 14 hits among scratches, None lines, unusable hits
C = "2015-05-05-12-00-00"  # train: exactly 10 hits, mono 24-bit wav
D = "2015-06-06-12-00-00"  # train: a single hit (used ten times), mono 16-bit
E = "2015-07-07-12-00-00"  # train: no usable hit (scratches and None only): left out
F247 = "2015-09-28-00-28-26-247"  # test: the '-247' style id, 12 hits, stereo 32-bit float wav
TIMES = {
    A: [
        (0.1, "ceramic", "hit"),
        (0.6, "None", "None"),
        (1.25, "wood", "hit"),
        (1.7, "cloth", "scratch"),
        (2.4, "ceramic", "hit"),
    ],
    B: [(0.15 * (i + 1), ["metal", "plastic-bag", "tile"][i % 3], "hit") for i in range(14)]
    + [
        (0.225, "gravel", "scratch"),
        (1.0, "glass", "None"),
        (1.3, "None", "None"),
        (2.2, "None", "hit"),  # a hit with no material: not usable
        (2.7, "rock", "hit"),
    ],  # after the end of the sound: not usable, but rock is in view
    C: [(0.2 + 0.2 * i, ["water", "leaf"][i % 2], "hit") for i in range(10)],
    D: [(0.5, "None", "None"), (1.0, "dirt", "hit")],
    E: [(0.5, "paper", "scratch"), (1.0, "None", "None")],
    F247: [(0.1 + 0.2 * i, ["grass", "drywall"][i % 2], "hit") for i in range(12)],
}
LABELS = {A: {11, 15, 14}, B: {3, 12, 10, 8, 9, 2}, C: {7, 4}, D: {13}, F247: {5, 1}}  # by hand, Table 1 IDs


def write_wav(path, x, sampwidth):
    """(T, C) floats in [-1, 1] -> a 96 kHz wav: integer PCM (16 or 24 bits, with `wave`), or (4) 32-bit
    float."""
    x = np.asarray(x)
    if sampwidth == 4:  # format tag 3, which `wave` cannot write
        body = x.astype("<f4").tobytes()
        fmt = struct.pack("<HHIIHH", 3, x.shape[1], RATE, RATE * 4 * x.shape[1], 4 * x.shape[1], 32)
        return path.write_bytes(
            b"RIFF"
            + struct.pack("<I", 36 + len(body))
            + b"WAVEfmt "
            + struct.pack("<I", len(fmt))
            + fmt
            + b"data"
            + struct.pack("<I", len(body))
            + body
        )
    ints = np.round(x * (2 ** (8 * sampwidth - 1) - 1)).astype("<i4")
    raw = (
        ints.astype("<i2").tobytes()
        if sampwidth == 2
        else np.frombuffer(ints.tobytes(), np.uint8).reshape(-1, 4)[:, :3].tobytes()
    )  # 24-bit: the low bytes
    with wave.open(str(path), "wb") as w:
        w.setparams((ints.shape[1], sampwidth, RATE, 0, "NONE", "not compressed"))
        w.writeframes(raw)


def write_mp4(path):
    """A 32x24 h264 video whose frame k has colour PALETTE[k], a key frame every 3 frames."""
    import av  # only the tests that make real files need PyAV

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.codec_context.gop_size = 3
        for colour in PALETTE:
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), colour, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def sound_of(rid):
    """(T, C) samples of a recording: A a steady stereo level with clicks at its hits; the others noise."""
    n = int(SECONDS * RATE)
    if rid != A:
        return np.random.default_rng(len(rid) + int(rid[5:7])).uniform(
            -0.3, 0.3, (n, 1 if rid in (C, D) else 2)
        )
    x = np.tile(np.array(BACKGROUND), (n, 1))
    for t, _, action in TIMES[A]:
        x[round(t * RATE) - 10 : round(t * RATE) + 10] += CLICK * (action == "hit")
    return x


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    """The miniature archive, unpacked and prepared once through the command line: (the folder unzipped into,
    the inner folder holding train.txt, the dataset file, the process, the dataset)."""
    top = tmp_path_factory.mktemp("archive")
    folder = top / "vis-data-256" / "vis-data-256"
    folder.mkdir(parents=True)
    (folder / "train.txt").write_text(
        "\n".join([D, A, B, E, C]) + "\n\n"
    )  # unsorted, a blank line at the end
    (folder / "test.txt").write_text(F247 + "\n")
    for rid in TIMES:
        write_wav(folder / f"{rid}_denoised.wav", sound_of(rid), {F247: 4, C: 3}.get(rid, 2))
        write_mp4(folder / f"{rid}_denoised.mp4")
        (folder / f"{rid}_times.txt").write_text(
            "".join(f"{t:.6f} {m} {a} {'None' if a == 'None' else 'static'}\n" for t, m, a in TIMES[rid])
        )
        for ignored in ["_denoised_thumb.mp4", "_mic.mp4", "_mic.wav"]:
            (folder / (rid + ignored)).write_bytes(b"not read")
    out = top / "out" / "greatest_hits.pt"
    r = run("data.py", "prepare", top, "--out", out, "--seed", "0")
    assert r.returncode == 0, r.stderr
    return top, folder, out, r, torch.load(out, weights_only=True)


def row(d, rid):
    return d["video_ids"].index(rid)


@pytest.fixture(scope="session")
def greatest_hits():
    """dataset_sources/greatest_hits.py, imported by its own tests only: it needs PyAV, the rest of the suite
    does not (`pytest test_all.py -k spectrogram` runs without it)."""
    from dataset_sources import greatest_hits

    return greatest_hits


def test_the_validation_draw_is_stratified_seeded_and_independent_of_the_lists_order(greatest_hits):
    """20% of train.txt becomes validation; every material in two or more recordings is in both splits."""
    rng = np.random.default_rng(0)
    materials = {
        f"r{i:03d}": {int(m) for m in rng.choice(16, rng.integers(1, 4), replace=False)} for i in range(100)
    }
    materials["r007"].add(16)
    materials["r042"].add(16)  # a rare material: two recordings
    split = greatest_hits.split_train_list(materials, seed=0)
    assert sorted(split) == sorted(materials) and sum(split.values()) == 20
    for m in range(17):
        assert {split[r] for r in materials if m in materials[r]} == {0, 1}, m
    assert split == greatest_hits.split_train_list(dict(reversed(materials.items())), seed=0)
    assert split != greatest_hits.split_train_list(materials, seed=1)


def test_prepare_writes_the_contract_with_the_official_splits_every_annotated_material_and_a_frame(archive):
    """check_dataset passes (224x224 frames, 22,050 Hz clips); E (no usable hit) is left out and named, A and
    D counted as padded; test.txt is the test set, train.txt's kept recordings split 3 train / 1 validation;
    the labels are every material annotated, whatever the action, in Table 1's IDs. The frame is taken in the
    middle of the longest gap between events (A: 2.05 s, frame 8), resized over the whole picture, in RGB
    order."""
    *_, out, r, d = archive
    data.check_dataset(d)
    assert d["source"] == "greatest-hits" and d["video_ids"] == sorted([A, B, C, D, F247])
    assert d["frames"].shape == (5, 3, 224, 224) and d["clips"].shape == (5, 10, 22050)
    assert "videos: train 3, val 1, test 1 (5 in all)" in r.stdout and "hits per material" in r.stdout
    assert "recordings padded (fewer than 10 usable hits, so hits reused): 2" in r.stdout
    assert f"recordings left out (no usable hit): 1 ({E})" in r.stdout
    assert "Traceback" not in r.stderr and "| 6/6 [" in r.stderr.split("\n")[-2], "tqdm's bar, complete"
    split = dict(zip(d["video_ids"], d["split"].tolist(), strict=True))
    assert split[F247] == 2 and sorted(split[r] for r in [A, B, C, D]) == [0, 0, 0, 1]
    for rid, expected in LABELS.items():
        assert set(torch.nonzero(d["image_labels"][row(d, rid)]).flatten().tolist()) == expected, rid
    assert d["frame_times"][row(d, A)].item() == pytest.approx(2.05)
    for rid in [A, B, C, D, F247]:
        t = d["frame_times"][row(d, rid)].item()
        expected = torch.tensor(PALETTE[min(int(t * FPS), 9)], dtype=torch.float)[:, None, None]
        assert (d["frames"][row(d, rid)].float() - expected).abs().max() < 12, (rid, t)


def test_clips_are_hits_spread_over_the_recording_centred_and_padded(archive):
    """Each clip is a usable hit (never a scratch, a material-less hit or one past the end), with that hit's
    material, in time order: with ten or more hits one from each of ten runs of consecutive hits, with fewer
    every hit used floor or ceil(10 / hits) times. A's clicks (at 0.1, 1.25, 2.4 s of 2.5 s) peak within 1 ms
    of the clip centre; the first clip starts with 0.4 s of zeros, the last ends with them (padded, not
    shifted); elsewhere the mono level is the mean of the two channels."""
    d = archive[4]
    ids = {m: i for i, m in enumerate(data.MATERIALS)}
    for rid in [A, B, C, D, F247]:
        hits = sorted((t, m) for t, m, a in TIMES[rid] if a == "hit" and m != "None" and t <= SECONDS)
        times = d["hit_times"][row(d, rid)].tolist()
        index = [min(range(len(hits)), key=lambda i: abs(hits[i][0] - t)) for t in times]
        assert times == sorted(times) and all(
            abs(hits[i][0] - t) < 1e-6 for i, t in zip(index, times, strict=True)
        ), rid
        assert d["clip_materials"][row(d, rid)].tolist() == [ids[hits[i][1]] for i in index]
        counts = np.bincount(index, minlength=len(hits))
        if len(hits) >= 10:
            runs_of_hits = np.array_split(np.arange(len(hits)), 10)
            assert all(i in run for i, run in zip(index, runs_of_hits, strict=True)), rid
        else:
            assert counts.min() == 10 // len(hits) and counts.max() == math.ceil(10 / len(hits)), rid
    assert sorted(d["hit_times"][row(d, C)].tolist()) == pytest.approx([t for t, _, _ in TIMES[C]])
    clips, times = d["clips"][row(d, A)].float() / 32767, d["hit_times"][row(d, A)].tolist()
    centre, level = 22050 // 2, sum(BACKGROUND) / 2
    assert ((clips.abs().argmax(1) - centre).abs() <= 22).all() and clips.abs().max(1).values.min() > 0.5
    first, last, middle = clips[times.index(0.1)], clips[times.index(2.4)], clips[times.index(1.25)]
    start, end = centre - round(0.1 * 22050), centre + round(0.1 * 22050)  # where the file begins and ends
    assert (first[:start] == 0).all() and (first[start + 200 : centre - 200] - level).abs().max() < 0.01
    assert (last[end:] == 0).all() and (last[centre + 200 : end - 200] - level).abs().max() < 0.01
    assert (middle[: centre - 200] - level).abs().max() < 0.01 and (
        middle[centre + 200 :] - level
    ).abs().max() < 0.01


def test_each_recording_is_prepared_independently_of_the_rest_from_any_level_of_the_archive(
    archive, tmp_path, greatest_hits
):
    """Prepared again without D, the other recordings are identical (each draws from its own stream); another
    seed changes the choice of a 14-hit recording; ROOT may be any level of the nested archive."""
    d = archive[4]
    top, folder = archive[:2]  # again, in this process, from a copy given at its inner level, without D
    shutil.copytree(folder, tmp_path / "archive")
    (tmp_path / "archive" / "train.txt").write_text("\n".join([A, B, C, E]) + "\n")
    again, report = greatest_hits.prepare(str(tmp_path / "archive"), seed=0)
    assert report == {"padded": 1, "left_out": [E]} and again["video_ids"] == [A, B, C, F247]
    for rid in [A, B, C, F247]:
        for key in ["frames", "clips", "clip_materials", "hit_times", "image_labels", "frame_times"]:
            assert torch.equal(again[key][row(again, rid)], d[key][row(d, rid)]), (rid, key)
    assert any(
        greatest_hits.choose_hits(list(range(14)), B, seed)
        != greatest_hits.choose_hits(list(range(14)), B, 0)
        for seed in range(1, 4)
    )
    for root in [top, top / "vis-data-256", folder]:  # each level of the nested archive
        assert greatest_hits.find_root(str(root)) == str(folder)


def edit(name, content=None, line=None):
    """A change to one file of the archive: replace (None: delete) it, or replace its line number `line`."""

    def mutate(folder):
        if line:
            lines = (folder / name).read_text().splitlines()
            lines[line - 1] = content
            content_ = "\n".join(lines) + "\n"
        (folder / name).unlink(missing_ok=True)
        if content is not None:
            (folder / name).write_bytes(content_.encode() if line else content)

    return mutate


def both(*mutations):
    return lambda folder: [mutate(folder) for mutate in mutations]


BAD = {  # case: (mutation of the archive, ROOT below the copy's top, what the error line names[, flags])
    "missing root": (None, "nowhere", ["nowhere"]),
    "no train.txt": (edit("train.txt"), "", ["train.txt"]),
    "no test.txt": (edit("test.txt"), "", ["test.txt"]),
    "id without its files": (edit(f"{F247}_denoised.mp4"), "", ["test.txt line 1", f"{F247}_denoised.mp4"]),
    "id listed twice": (
        edit("test.txt", f"{F247}\n{B}\n".encode()),
        "",
        ["test.txt line 2", B, "train.txt line 3"],
    ),
    "two ids on a line": (edit("train.txt", f"{A} {B}\n".encode()), "", ["train.txt line 1"]),
    "unknown material": (
        edit(f"{B}_times.txt", "0.450000 wodo hit static", 3),
        "",
        [f"{B}_times.txt line 3", "wodo"],
    ),
    "three fields": (
        edit(f"{A}_times.txt", "0.600000 None None", 2),
        "",
        [f"{A}_times.txt line 2", "0.600000 None None"],
    ),
    "not a number first": (edit(f"{C}_times.txt", "abc water hit static", 4), "", [f"{C}_times.txt line 4"]),
    "nan time": (edit(f"{C}_times.txt", "nan water hit static", 1), "", [f"{C}_times.txt line 1"]),
    "binary times file": (edit(f"{C}_times.txt", bytes(range(256)) * 4), "", [f"{C}_times.txt line 1"]),
    "negative seed": (None, "", ["--seed"], ["--seed", "-1"]),
    "undecodable wav": (edit(f"{A}_denoised.wav", b"RIFF\x00\x00garbage" * 10), "", [f"{A}_denoised.wav"]),
    "empty wav": (
        lambda folder: write_wav(folder / f"{A}_denoised.wav", np.zeros((0, 2)), 2),
        "",
        [f"{A}_denoised.wav", "no sound"],
    ),
    "undecodable mp4": (
        edit(f"{B}_denoised.mp4", b"\x00\x00\x00\x18ftypmp42" + b"junk" * 50),
        "",
        [f"{B}_denoised.mp4"],
    ),
    "no usable hit in the test list": (
        both(
            edit(f"{F247}_times.txt", b"0.500000 grass scratch static\n"),
            edit("train.txt", f"{A}\n{C}\n{D}\n".encode()),
        ),
        "",
        ["test split"],
    ),
    "an id written ./ID": (edit("test.txt", f"./{F247}\n".encode()), "", ["test.txt line 1", f"./{F247}"]),
    "an id reaching out of ROOT": (edit("train.txt", f"{A}\n../x/{B}\n".encode()), "", ["train.txt line 2"]),
    "a byte-order mark is not part of the first id": (  # as some Windows editors write
        both(
            lambda folder: (folder / "train.txt").write_bytes(
                b"\xef\xbb\xbf" + (folder / "train.txt").read_bytes()
            ),
            edit(f"{B}_times.txt", "0.45 wodo hit static", 3),
        ),
        "",
        [f"{B}_times.txt line 3"],
    ),
    "--out a folder": (None, "", [os.path.join(HERE, "docs")], ["--out", os.path.join(HERE, "docs")]),
    "--out where nothing can be written": (None, "", ["/proc"], ["--out", "/proc/matsound.pt"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_archives_are_refused_in_one_line_and_the_old_output_kept(case, archive, tmp_path):
    """`data.py prepare` on a broken copy of the archive, over an existing output file."""
    mutate, root, facts, *flags = BAD[case]
    shutil.copytree(archive[0] / "vis-data-256", tmp_path / "top" / "vis-data-256")
    if mutate is not None:
        mutate(tmp_path / "top" / "vis-data-256" / "vis-data-256")
    out = tmp_path / "out" / "greatest_hits.pt"
    out.parent.mkdir()
    shutil.copyfile(archive[2], out)
    check_refused(
        run_here("data.py", "prepare", tmp_path / "top" / root, "--out", out, *(flags[0] if flags else [])),
        *facts,
    )
    assert out.read_bytes() == archive[2].read_bytes() and os.listdir(out.parent) == ["greatest_hits.pt"]


def test_an_undecodable_mp4_ends_the_command_in_one_line(archive, tmp_path):
    """As a user runs it, in a new Python: nothing of FFmpeg's own logging reaches the screen."""
    shutil.copytree(archive[0], tmp_path / "top", ignore=shutil.ignore_patterns("out"))
    folder = tmp_path / "top" / "vis-data-256" / "vis-data-256"
    edit(f"{A}_denoised.mp4", b"not an mp4 at all")(folder)
    check_refused(
        run("data.py", "prepare", tmp_path / "top", "--out", tmp_path / "new.pt"),
        f"{folder / A}_denoised.mp4",
        "cannot be decoded",
    )
    assert sorted(os.listdir(tmp_path)) == ["top"]


def test_prepare_interrupted_while_writing_exits_130_and_writes_nothing(
    greatest_hits, archive, tmp_path, monkeypatch
):
    """Ctrl-C while writing (prepare() replaced by its result): exit 130, one line, nothing written."""
    out = tmp_path / "greatest_hits.pt"
    shutil.copyfile(archive[2], out)
    monkeypatch.setattr(
        greatest_hits, "prepare", lambda root, seed: (archive[4], {"padded": 2, "left_out": [E]})
    )
    monkeypatch.setattr(torch, "save", failing_write(KeyboardInterrupt()))
    r = run_here("data.py", "prepare", archive[1], "--out", out)
    assert r.returncode == 130 and r.stderr.startswith("interrupted: ") and r.stderr.count("\n") == 1, (
        r.stderr
    )
    assert (
        str(out) in r.stderr
        and out.read_bytes() == archive[2].read_bytes()
        and os.listdir(tmp_path) == [out.name]
    )


# --- study/: `python study/summary.py RUNS`, the paper's Tables 2-5 and Figures 2, 5-9 from the runs ------


def fake_run(script, backbone, weighted, tiny, seed):
    """A one-epoch run's metrics.json (the keys the summary reads), scored by metrics.py on random guesses."""
    key, g = (script, backbone, weighted), torch.Generator().manual_seed(seed)
    names = runs.TABLE_METRICS[metrics.PAPER[key]["table"]]
    scores, baseline, extra = {}, {}, {}
    for part in ["val", "test"]:
        if script in ("sound_only", "fc_agg"):
            target, pred = torch.randint(0, 17, (60,), generator=g), torch.randint(0, 17, (60,), generator=g)
            scores[part] = {"accuracy": metrics.accuracy(pred, target)}
            baseline[part] = metrics.majority_baseline(torch.randint(0, 17, (140,), generator=g), target)
            extra["test_confusion"] = metrics.confusion_matrix(pred, target, 17).tolist()
        else:
            target = torch.rand(6, 17, generator=g) < 0.2
            scores[part] = metrics.binary_scores(torch.rand(6, 17, generator=g) < 0.5, target)
            baseline[part] = (
                metrics.all_negative_baseline(target)
                if script == "visual_only"
                else metrics.chance_baseline(torch.tensor([1.0, 0.0]))
            )
    return {
        "script": script,
        "backbone": backbone,
        "weighted": weighted,
        "args": {"backbone": backbone, "epochs": 1, "data": tiny, "seed": seed},
        "data": "toy",
        "source": "toy",
        "val": scores["val"],
        "test": scores["test"],
        "paper": metrics.PAPER[key],
        "baseline": baseline,
        "curves": [
            {
                "epoch": 1,
                "train_loss": 1.0,
                **{f"val_{n}": scores["val"][n] for n in names},
                "samples_per_s": 10.0,
                "elapsed_s": 1.0,
            }
        ],
        **extra,
    }


MISSING = ("fc_agg", "vgg", False)  # left out of the study: the summary must name it with its command


@pytest.fixture(scope="module")
def study(tt_run, retrieved, tiny, tmp_path_factory):
    """Two seeds of every run but MISSING (seed 0's tt_agg and retrieval real, the rest fake_run's) and a
    broken one: (what `python study/summary.py FOLDER` prints, FOLDER)."""
    folder = tmp_path_factory.mktemp("study")
    for seed in [0, 1]:
        for key in metrics.PAPER:
            if key == ("tt_agg", "resnet", False) and seed == 0:
                shutil.copytree(tt_run[3], folder / data.run_name(*key, seed))
            elif key != MISSING:
                path = folder / data.run_name(*key, seed) / "metrics.json"
                ownership.write_json(fake_run(*key, tiny, seed=seed), str(path))
        m = {
            **retrieved[1],
            "trained_seed": seed,
            "mean": [min(1.0, p + 0.02 * seed) for p in retrieved[1]["mean"]],
        }
        ownership.write_json(m, str(folder / data.run_name("retrieve", "resnet", seed=seed) / "metrics.json"))
    (folder / "broken").mkdir()
    (folder / "broken" / "metrics.json").write_text('{"script": "sound_only", ')  # an interrupted write
    r = run_here("study/summary.py", folder)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout, folder


def test_summary_prints_every_table_over_seeds_with_the_papers_rows_and_writes_every_figure(study, tt_run):
    out, folder = study
    assert "20 runs, seeds 0, 1, toy data" in out and "note: skipped" in out and "broken" in out, (
        "named, no crash"
    )
    found, current = {}, None  # {number: the lines of Table number}
    for line in out.splitlines():
        current = (
            int(line.split()[1].rstrip(":"))
            if line.startswith("Table ")
            else current
            if line.strip()
            else None
        )
        found.setdefault(current, []).append(line)
    assert sorted(k for k in found if k) == [2, 3, 4, 5]
    for number in [2, 3, 4, 5]:
        lines, keys = found[number], [k for k, p in metrics.PAPER.items() if p["table"] == number]
        assert f"Table {number}: {summary.TABLE_CAPTIONS[number]}" in lines[0]
        assert sum(line.startswith("ours ") for line in lines) == len([k for k in keys if k != MISSING])
        assert sum(line.startswith("paper ") for line in lines) == len(keys)
        for key in keys:
            assert any(line.startswith(summary.row_title(key, {}).split(":")[0]) for line in lines), (
                number,
                key,
            )
            paper_val = f"{metrics.PAPER[key]['val'][runs.TABLE_METRICS[number][0]]:.4f}"
            assert any(line.startswith("paper ") and paper_val in line for line in lines)
        baseline = {2: "majority class", 3: "all negative", 4: "majority class", 5: "chance (coin flip)"}[
            number
        ]
        assert sum(line.startswith(f"baseline: {baseline}") for line in lines) == len(
            [k for k in keys if k != MISSING]
        )
        assert len({len(line) for line in lines[1:] if "|" in line}) == 1, "the columns line up"
    assert (
        "VGG-11-BN, weighted loss, mean ± std over 2 seeds (0, 1) (trained 1 epoch; the paper trains 30)"
        in "\n".join(found[3])
    )
    ours = next(
        line for line in found[5] if line.startswith("ours ")
    )  # ResNet: one real seed, one fake: a spread
    f1 = [tt_run[1]["test"]["f1"], fake_run("tt_agg", "resnet", False, "", 1)["test"]["f1"]]
    assert f"{sum(f1) / 2:.3f} ± {abs(f1[0] - f1[1]) / math.sqrt(2):.3f}" in ours
    assert "VGG-11-BN: not run yet, make it with `python fc_agg.py --backbone vgg`" in "\n".join(found[4])
    assert (
        "Missing runs (2): make them with\n  python fc_agg.py --backbone vgg\n"
        "  python fc_agg.py --backbone vgg --seed 1\n" in out
    )
    numbers = out[out.index("Retrieval, image -> sound") :].split("\n\n")[0]
    assert all(s in numbers for s in ["library all", "seeds 0, 1", "mAP", "precision@50", "paper (Figure 8"])
    assert sorted(os.listdir(folder / "figures")) == sorted([ownership.MANIFEST, *figures.FIGURES.values()])
    for name in figures.FIGURES.values():
        png = (folder / "figures" / name).read_bytes()
        assert png[:8] == PNG and len(png) > 10_000 and name in out, name


def test_summary_checks_the_papers_claims_as_paired_differences_over_seeds(study):
    lines = study[0][study[0].index("The paper's conclusions") :].split("\n\n")[0].splitlines()[2:]
    assert len(lines) == len(claims.claims(["resnet", "vgg"]))
    two_seeds = "too few seeds (2; a verdict needs 3)"  # the study has two seeds: no verdict yet
    assert all(line.endswith((two_seeds, "  -")) for line in lines), lines
    assert any("FC_AGG converges faster" in line and "too short" in line for line in lines)  # 1 epoch, not 5
    assert any(
        line.startswith("vgg: FC_AGG ends level") and "runs missing" in line for line in lines
    )  # MISSING
    retrieval = next(line for line in lines if line.startswith("Retrieval keeps"))
    assert "(2)" in retrieval and "[" in retrieval
    for values, direction, verdict in [
        ([0.10, 0.12, 0.11], "above", "holds"),
        ([-0.10, -0.12, -0.11], "above", "does not hold"),
        ([-0.10, -0.12, -0.11], "below", "holds"),
        ([0.10, -0.10, 0.02], "above", "within noise"),
        ([0.01, -0.01, 0.0], "level", "holds"),
        ([0.20, 0.21, 0.22], "level", "does not hold"),
        ([0.1, -0.1, 0.0], "level", "within noise"),
    ]:
        assert claims.verdict(values, direction) == verdict, (values, direction)
    assert claims.verdict([0.3], "above").startswith("too few seeds (1;")
    assert claims.verdict([0.2, 0.2], "above").startswith("too few seeds (2;"), "a zero-width interval"
    mean, half, n = metrics.mean_interval([1.0, 2.0, 3.0])  # sd 1, t(2) = 4.303: half = 4.303 / sqrt(3)
    assert (mean, n) == (2.0, 3) and abs(half - 4.303 / math.sqrt(3)) < 1e-9
    # Beyond the table, Student's t still (not the normal's 1.96): the exact quantiles at 10-120 degrees of
    # freedom, to the table's three decimals, and an interval of 11 seeds that is t(10) wide.
    for df, exact in [
        (10, 2.228),
        (11, 2.201),
        (15, 2.131),
        (20, 2.086),
        (30, 2.042),
        (60, 2.000),
        (120, 1.980),
    ]:
        assert abs(metrics.t95(df) - exact) < 6e-4, (df, metrics.t95(df))
    values = [float(v) for v in range(11)]
    assert abs(metrics.mean_interval(values)[1] - 2.228 * statistics.stdev(values) / math.sqrt(11)) < 1e-3


HAND_EDITED = {  # a run's metrics.json edited by hand or from elsewhere: (run folder, edit, the field named)
    "args a list": ("tt_agg-resnet-seed0", lambda m: {**m, "args": [1, 2]}, "'args'"),
    "a boolean accuracy": (
        "tt_agg-resnet-seed0",
        lambda m: {**m, "test": {**m["test"], "accuracy": True}},
        "test",
    ),
    "a null in the curves": (
        "tt_agg-resnet-seed0",
        lambda m: {**m, "curves": [{**m["curves"][0], "val_f1": None}]},
        "'curves' epoch 1",
    ),
    "a retrieval without its query": (
        "retrieve-resnet-seed0",
        lambda m: {k: v for k, v in m.items() if k != "query"},
        "'query'",
    ),
    "another dataset": ("tt_agg-resnet-seed0", lambda m: {**m, "data_fingerprint": "0" * 16}, "dataset"),
    "other epochs": ("tt_agg-resnet-seed0", lambda m: {**m, "args": {**m["args"], "epochs": 2}}, "epochs"),
}


@pytest.mark.parametrize("case", list(HAND_EDITED))
def test_summary_reads_hand_edited_or_foreign_runs_with_suspicion(case, tt_run, retrieved, tmp_path):
    """One run edited (by hand, or trained on another dataset or for other epochs than the rest): left out
    with a note naming its file and the field, the others summarised, no traceback. Catches a summary that
    trusts every metrics.json (a traceback) or averages runs of other datasets or lengths silently."""
    name, edit, field = HAND_EDITED[case]
    for seed in [0, 1]:  # two seeds of the real tt_agg run and retrieval (the seed recorded in each copy)
        for folder, source in [("tt_agg-resnet", tt_run[3]), ("retrieve-resnet", retrieved[2])]:
            m = json.load(open(source / "metrics.json"))
            m = {**m, "args": {**m["args"], "seed": seed}, "trained_seed": seed}
            if f"{folder}-seed{seed}" == name:
                m = edit(m)
            (tmp_path / f"{folder}-seed{seed}").mkdir()
            (tmp_path / f"{folder}-seed{seed}" / "metrics.json").write_text(json.dumps(m))
    r = run_here("study/summary.py", tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    notes = [line for line in r.stdout.splitlines() if line.startswith("note:") and name in line]
    assert len(notes) == 1 and field in notes[0], r.stdout[:2000]
    assert "3 runs, seeds 0, 1" in r.stdout


def test_summary_names_missing_runs_with_their_commands_and_refuses_a_folder_without_runs(tt_run, tmp_path):
    """Only the tt_agg run, in a folder of the old naming: every other row, the retrieval and its figure say
    how to make them."""
    (tmp_path / "tt_agg-resnet").mkdir()
    shutil.copy(tt_run[3] / "metrics.json", tmp_path / "tt_agg-resnet")
    out = run_here("study/summary.py", tmp_path).stdout
    assert "1 run, seed 0" in out and "Missing runs (10)" in out
    for key in [*metrics.PAPER, ("retrieve", "resnet", False)]:
        if key != ("tt_agg", "resnet", False):
            assert f"\n  {runs.run_command(*key)}\n" in out, key
    assert "make it with `python visual_only.py --backbone resnet --weighted`" in out
    assert all((tmp_path / "figures" / name).read_bytes()[:8] == PNG for name in figures.FIGURES.values())
    check_refused(run_here("study/summary.py", tmp_path / "nowhere"), tmp_path / "nowhere")
    (tmp_path / "bad" / "broken").mkdir(parents=True)
    (tmp_path / "bad" / "broken" / "metrics.json").write_text("{")
    check_refused(run_here("study/summary.py", tmp_path / "bad"), tmp_path / "bad", "metrics.json")
    old = run("metrics.py", tmp_path)  # the summary's old command, from a user's notes: names the new one
    assert old.returncode == 1 and len(old.stderr.splitlines()) == 1 and "study/summary.py" in old.stderr


# --- teaching/: the student copy's blanks (pytest -k NAME), the kit's commands, the patches, the notebook ---
# A blank's tests are named test_exercise_NAME_*, so that `pytest test_all.py -k NAME` runs them all. Each
# says in its docstring which plausible mistake each case is there to catch; teaching/wrong_solutions.py
# (the teacher's) holds those mistakes written out, and test_the_kits_wrong_solutions_fail_and_right_ones_pass
# checks that every one of them is caught and every correct alternative passes.

TEACHING = os.path.join(HERE, "teaching")


class StandInPairs(torch.nn.Module):
    """A stand-in for tt_agg.TwoTower: (frames, spectrograms) -> (B,) in (0, 1) from each input's mean
    channels, so that make_examples' pairs are trained on whether or not the student's forward is written."""

    def __init__(self):
        super().__init__()
        self.image, self.sound = torch.nn.Linear(3, 1), torch.nn.Linear(1, 1)

    def forward(self, image, sound):
        logit = self.image(image.mean((2, 3))) + self.sound(sound.mean((2, 3)))  # (B, 1)
        return torch.sigmoid(logit)[:, 0]


class Flatten(torch.nn.Module):
    """A stand-in tower: (B, D, 1, 1) -> (B, D), so that a test chooses the embeddings exactly."""

    def forward(self, x):
        return x.flatten(1)


def random_spectrograms(clips, sample_rate, size):
    """A stand-in for data.spectrogram (seeded noise of the right shape), so that the blanks other than
    `spectrogram` are checked on the real Dataset whether or not `spectrogram` is written yet."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(*clips.shape[:-1], 1, size, size, generator=generator)


@pytest.fixture(scope="session")
def kit_dataset(tiny):
    """The tiny toy as the real data.Dataset (every field the training scripts use), spectrograms stood in."""
    import unittest.mock

    with unittest.mock.patch.object(data, "spectrogram", random_spectrograms):
        return data.Dataset(data.read_dataset(tiny), tiny, torch.device("cpu"))


SPECTROGRAM_IMAGES = os.path.join(TEACHING, "spectrogram_cases.pt")  # the spectrogram test's expected images


def spectrogram_cases():
    """The spectrogram test's clips: {name: (clips, sample rate, its n_fft, image size)}. Three clips (a noisy
    tone, a decaying impact, a chirp) at 22,050, 44,100 and 8,000 Hz, image size 32, with n_fft worked out by
    hand (~46 ms: 1024, 2048, 512); and two of them as int16 with a leading dimension, image size 48."""
    cases = {}
    for rate, n_fft in [(22050, 1024), (44100, 2048), (8000, 512)]:
        t = torch.arange(rate) / rate
        noise = torch.randn(rate, generator=torch.Generator().manual_seed(rate))
        tone = 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.05 * noise
        impact = torch.sin(2 * math.pi * 1800 * t) * torch.exp(-12 * t) + 0.01 * noise
        chirp = 0.5 * torch.sin(2 * math.pi * (200 + 1500 * t) * t) + 0.02 * noise
        cases[str(rate)] = (torch.stack([tone, impact, chirp]), rate, n_fft, 32)  # (3, rate): one second each
    int16 = (cases["8000"][0][:2] * 20000).to(torch.int16)[None]  # (1, 2, 8000)
    cases["int16"] = (int16, 8000, 512, 48)
    return cases


def test_exercise_spectrogram_matches_a_log_mel_computed_step_by_step():
    """The cases of spectrogram_cases() against the images torchaudio's transforms give when the recipe of
    data.spectrogram's docstring is done one step at a time (stored in teaching/spectrogram_cases.pt; the
    teacher's suite checks them against that recipe). Catches: no log (or log1p instead), a linear STFT
    instead of mel bands, amplitude instead of power, standardisation per time frame or per mel band instead
    of per clip, standardising after the resize, no antialiasing, a hop other than n_fft / 4, an n_fft fixed
    at 1024 instead of ~46 ms at each rate (44,100 Hz: 2048; 8,000 Hz: 512), and int16 clips not scaled."""
    expected = torch.load(SPECTROGRAM_IMAGES, weights_only=True)
    for name, (clips, rate, _, size) in spectrogram_cases().items():
        got = data.spectrogram(clips, rate, size)
        shape = (*clips.shape[:-1], 1, size, size)
        assert got.shape == shape and got.dtype == torch.float32, (
            f"{name}: a float32 image of shape {shape}, not {got.dtype} {tuple(got.shape)}"
        )
        difference = (got.reshape(expected[name].shape) - expected[name]).abs().max().item()
        assert difference < 2e-3, (
            f"{name} Hz: the log-mel image differs from torchaudio's by up to {difference:.3g}"
        )


def write_spectrogram_images(path=SPECTROGRAM_IMAGES):
    """The teacher's, after a change to spectrogram_cases(): the recipe's images of every case into `path`."""
    from teaching.wrong_solutions import log_mel_by_hand

    images = {}
    for name, (clips, rate, n_fft, size) in spectrogram_cases().items():
        flat = clips.reshape(-1, clips.shape[-1])
        images[name] = log_mel_by_hand(flat.float() / 32768 if name == "int16" else flat, rate, n_fft, size)
    torch.save(images, path)
    return images


def test_the_stored_log_mel_images_are_the_recipe_done_step_by_step(tmp_path):
    """teaching/spectrogram_cases.pt, which a student's copy holds, is what the recipe of data.spectrogram's
    docstring gives done with torchaudio one transform per step (teaching/wrong_solutions.log_mel_by_hand,
    the teacher's: the copy's tests spell out no recipe). After a change to the cases, write it again with
    `python -c "import test_all; test_all.write_spectrogram_images()"`."""
    pytest.importorskip("teaching.wrong_solutions")  # the recipe is the teacher's
    stored = torch.load(SPECTROGRAM_IMAGES, weights_only=True)
    again = write_spectrogram_images(tmp_path / "images.pt")
    assert stored.keys() == again.keys()
    assert all(torch.allclose(stored[name], again[name], atol=1e-5) for name in stored)


def test_exercise_spectrogram_properties_gain_compression_and_pitch():
    """Properties any correct log-mel image has. Gain invariance: a clip and the same clip at a fifth of the
    volume give the same image (catches a standardisation that is missing or leaves the gain in). The log's
    compression: a tone 60 dB below a loud one still stands out of its row's neighbours (catches a missing
    log, which per-clip standardisation would otherwise hide, being gain-invariant too). Pitch as height: a
    higher tone lights a higher row (catches an image flipped upside down or transposed)."""
    rate = data.SAMPLE_RATE
    t = torch.arange(rate) / rate
    low, high = torch.sin(2 * math.pi * 300 * t), torch.sin(2 * math.pi * 5000 * t)
    noisy = torch.randn(rate, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.3 * low
    quiet = data.spectrogram(torch.stack([noisy, 0.2 * noisy]), rate, 32)
    assert torch.allclose(quiet[0], quiet[1], atol=1e-4), "the recording gain does not change the image"
    alone, both = data.spectrogram(torch.stack([high, 0.5 * low + 0.0005 * high]), rate, 32)[:, 0]  # (32, 32)
    row = alone.mean(1).argmax().item()  # the 5 kHz tone's row
    rows = both.mean(1)  # (32,): each row's mean over time
    neighbours = torch.cat([rows[row - 6 : row - 3], rows[row + 4 : row + 7]])
    assert rows[row] - neighbours.max() > 0.5, (
        "a tone 60 dB down is still seen (the log compresses the range)"
    )
    energy = data.spectrogram(torch.stack([low, high]), rate, 32)[:, 0].mean(-1)  # (2, 32): rows over time
    assert energy[0].argmax() < energy[1].argmax(), "a higher tone lights a higher row"


def test_exercise_pos_weight_worked_cases():
    """negatives / positives per material, so that a material's positives weigh as much in the loss as its
    negatives; 1 for a material never seen. Catches: the ratio upside down (positives / negatives), all frames
    over positives (frames / positives instead of negatives / positives), a smoothed ratio (negatives /
    (positives + 1)), integer division, a sum over the wrong axis (one weight per frame), 0 or inf or NaN for
    a material never seen, weights rescaled to mean 1, and a weight capped (at 10, say, "so that rare
    materials do not blow up the loss": a material in one frame of 36 weighs 35, as toy ones do)."""
    import visual_only

    labels = torch.tensor(
        [[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=torch.bool
    )  # 4 frames, 3 materials
    weight = visual_only.positive_weights(labels)
    assert isinstance(weight, torch.Tensor), "the weights are a tensor (the loss takes a tensor, not a list)"
    assert weight.shape == (3,), f"one weight per material (3 here), not {tuple(weight.shape)}"
    assert weight.dtype.is_floating_point, f"float weights, not {weight.dtype} (integer division?)"
    assert weight.tolist() == pytest.approx([1 / 3, 3.0, 1.0]), (
        "4 frames, a material in 3 of them weighs 1/3, in 1 of them 3 (negatives / positives), in none 1"
    )
    seven = torch.zeros(7, 17, dtype=torch.bool)  # 7 frames: material 0 in all, 1 in two, 2 in three
    seven[:, 0], seven[:2, 1], seven[2:5, 2] = True, True, True
    expected = [0.0, 5 / 2, 4 / 3] + [1.0] * 14  # counted by hand
    assert visual_only.positive_weights(seven).tolist() == pytest.approx(expected), (
        "7 frames: a material in all of them weighs 0, in 2 of them 5/2, in 3 of them 4/3, never seen 1"
    )
    assert visual_only.positive_weights(torch.zeros(5, 17, dtype=torch.bool)).tolist() == [1.0] * 17, (
        "a material never seen weighs 1 (not 0, inf or NaN)"
    )
    rare = torch.zeros(36, 17, dtype=torch.bool)  # 36 frames: material 1 in one of them (rarer than 1 in 11)
    rare[0, 1] = True
    assert visual_only.positive_weights(rare)[1].item() == pytest.approx(35.0), (
        "a material in 1 frame of 36 weighs 35: the weight is not capped"
    )


def test_exercise_pos_weight_trains_the_weighted_loss(kit_dataset):
    """One weighted training epoch of visual_only.py through the student's weights, on the real dataset: a
    finite loss. Catches weights the loss cannot take (a list, inf, one per frame)."""
    import visual_only

    torch.manual_seed(0)
    examples = visual_only.make_examples(kit_dataset, kit_dataset.videos("train"))
    weight = visual_only.positive_weights(examples[-1])
    model = backbones.tower("resnet", 3, data.NUM_MATERIALS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = visual_only.train_epoch(model, optimizer, kit_dataset, examples, 64, weight, 1, "fp32")
    assert math.isfinite(loss)


def test_exercise_tt_agg_forward_worked_cases():
    """The cosine of the two embeddings, mapped from [-1, 1] to [0, 1], one probability per pair. Stand-in
    towers choose the embeddings: parallel, opposite and orthogonal ones of any length, and pairs of non-unit,
    non-parallel vectors on both sides. Catches: no normalisation (a dot product), one tower normalised and
    not the other, normalising over the batch (dim 0) instead of each embedding, a sigmoid or no scaling
    instead of (cos + 1) / 2, and a (B, 1) or (B, B) output, or a 0-d one for a batch of one (squeeze())."""
    import tt_agg

    model = tt_agg.TwoTower("resnet")
    model.image_tower, model.sound_tower = Flatten(), Flatten()
    image = [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [2.0, 2.0], [3.0, 4.0], [0.0, 3.0], [-2.0, 1.0]]
    sound = [[5.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [6.0, 8.0], [0.0, 1.0], [1.0, 2.0], [4.0, 3.0], [1.0, 3.0]]
    p = model(torch.tensor(image)[:, :, None, None], torch.tensor(sound)[:, :, None, None])
    assert p.shape == (8,), f"one probability per pair: shape (8,) for 8 pairs, not {tuple(p.shape)}"
    cosines = [1.0, -1.0, 0.0, 1.0, 2**-0.5, 11 / (5 * 5**0.5), 0.6, 1 / 50**0.5]  # by hand
    assert p.tolist() == pytest.approx([(c + 1) / 2 for c in cosines], abs=1e-6), (
        "(cosine + 1) / 2 of each pair's embeddings, whatever their lengths"
    )
    one = model(torch.tensor(image[3:4])[:, :, None, None], torch.tensor(sound[3:4])[:, :, None, None])
    assert one.shape == (1,), f"a batch of one pair gives shape (1,), not {tuple(one.shape)} (a squeeze()?)"


def test_exercise_tt_agg_forward_one_training_step_reaches_both_towers():
    """With the real towers: a probability in [0, 1] that does not depend on the other pairs of the batch, and
    one training step (binary cross-entropy, backward) with a finite loss and a gradient in every parameter of
    both towers. Catches: a detached tower (no gradient reaches it: training would go on silently), an output
    built with float() or torch.tensor (autograd lost: backward fails), and a no_grad inside forward."""
    import tt_agg

    torch.manual_seed(0)
    model = tt_agg.TwoTower("resnet")
    image, sound = torch.randn(4, 3, 32, 32), torch.randn(4, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        q = model(image, sound)
        assert ((q >= 0) & (q <= 1)).all() and q[:2] == pytest.approx(model(image[:2], sound[:2]), abs=1e-5)
    model.train()
    loss = F.binary_cross_entropy(model(image, sound).float(), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert torch.isfinite(loss)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), f"no gradient in {name}"
    for tower in [model.image_tower, model.sound_tower]:
        assert sum(p.grad.abs().sum() for p in tower.parameters()) > 0


def test_exercise_negative_sampling_pairs(kit_dataset):
    """On the real dataset, in any order: every clip of the split once with its own frame (label 1), and as
    many negatives (label 0), each frame ten times as in its positives, each with a clip of the same split
    whose material the frame does not show. Catches: negatives from another split or from the whole dataset, a
    negative whose material is in the frame (drawn from another video only, or checked against the wrong
    frame), a positive missing or twice, each negative given another frame than its positive, one negative
    drawn per frame and repeated for its ten clips, and labels that are not float (bool or integer labels fail
    in the loss). Positives first or interleaved with their negatives: either is correct."""
    import tt_agg

    videos = kit_dataset.videos("train")
    frame_video, sound_video, sound_clip, label = tt_agg.make_examples(
        kit_dataset, videos, torch.Generator().manual_seed(0)
    )
    m = data.CLIPS_PER_VIDEO * len(videos)
    assert len(label) == len(frame_video) == len(sound_video) == len(sound_clip) == 2 * m
    assert label.dtype == torch.float32 and sorted(label.tolist()) == [0.0] * m + [1.0] * m
    positive, negative = label == 1, label == 0
    pairs = list(
        zip(
            frame_video[positive].tolist(),
            sound_video[positive].tolist(),
            sound_clip[positive].tolist(),
            strict=True,
        )
    )
    assert sorted(pairs) == [(v, v, c) for v in sorted(videos.tolist()) for c in range(10)], "every clip once"
    assert sorted(frame_video[negative].tolist()) == sorted(frame_video[positive].tolist()), (
        "each frame ten times"
    )
    assert set(sound_video[negative].tolist()) <= set(videos.tolist()), "negatives come from the same split"
    material = kit_dataset.clip_materials[sound_video[negative], sound_clip[negative]]
    assert not kit_dataset.image_labels[frame_video[negative], material].any(), (
        "a negative's material is absent"
    )
    drawn = {}  # frame -> the negative clips drawn for it
    negatives = zip(
        frame_video[negative].tolist(),
        sound_video[negative].tolist(),
        sound_clip[negative].tolist(),
        strict=True,
    )
    for f, v, c in negatives:
        drawn.setdefault(f, set()).add((v, c))
    assert all(len(clips) > 1 for clips in drawn.values()), "ten clips of a frame, ten draws"


def test_exercise_negative_sampling_follows_the_generator_and_trains(kit_dataset):
    """The generator alone decides the draw: the same seed gives the same examples whatever torch's global
    seed, another seed other negatives. Catches: a draw from torch's global generator (ignoring the one
    given), and no draw at all (always the first absent clip). Then one training epoch of tt_agg.py on the
    examples: a finite loss (catches bool, integer or float64 labels, and float indices)."""
    import tt_agg

    videos = kit_dataset.videos("train")
    torch.manual_seed(1)
    first = tt_agg.make_examples(kit_dataset, videos, torch.Generator().manual_seed(0))
    torch.manual_seed(2)
    again = tt_agg.make_examples(kit_dataset, videos, torch.Generator().manual_seed(0))
    other = tt_agg.make_examples(kit_dataset, videos, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True)), (
        "the same generator seed, the same examples"
    )
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True)), (
        "another seed draws other negatives"
    )
    torch.manual_seed(0)
    model = StandInPairs()  # not TwoTower, so that this blank is checked whether or not forward is written
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    two = tt_agg.make_examples(kit_dataset, videos[:2], torch.Generator().manual_seed(0))  # 40 pairs: quick
    loss = tt_agg.train_epoch(model, optimizer, kit_dataset, two, 64, 1, "fp32")
    assert math.isfinite(loss), "one training epoch on your examples gives a finite loss"


def pessimistic_ranking(similarity, relevant):
    """One query's library positions, most similar first, ties with the non-relevant items first: Python's
    sort on (-similarity, relevant), independent of metrics.rank."""
    return sorted(range(len(similarity)), key=lambda i: (-similarity[i], relevant[i]))


def random_ties(queries, items, seed):
    """Similarities from a few levels (so that ties are common) and random relevance, as lists and tensors."""
    generator = torch.Generator().manual_seed(seed)
    similarity = torch.randint(0, 4, (queries, items), generator=generator).float() / 4
    relevant = torch.rand(queries, items, generator=generator) < 0.3
    return similarity, relevant


def test_exercise_precision_at_k_worked_cases_and_ties():
    """Precision@K for K = 1..k, entry [q, K-1]; ties count against the model. A worked case by hand; a
    constant similarity with the relevant item first, in the middle and last (all three rank it last); and 50
    random queries with many ties against a brute-force count. Catches: ties broken by index (stable sort) or
    by reversed index (sort ascending, then flip), the ranking upside down, off by one (K from 0, or dividing
    by K + 1), only precision@k returned, and hits counted over all queries."""
    similarity = torch.tensor([[0.9, 0.1, 0.8, 0.3], [0.2, 0.4, 0.6, 0.8]])
    relevant = torch.tensor([[1, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    p = metrics.precision_at_k(similarity, relevant, 4)
    # query 0 ranks items 0 (relevant), 2, 3 (relevant), 1; query 1: everything is relevant
    assert p.shape == (2, 4), f"(queries, k) = (2, 4), not {tuple(p.shape)}: precision@K for every K up to k"
    assert p.flatten().tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5, 1.0, 1.0, 1.0, 1.0]), (
        "ranked 0 (relevant), 2, 3 (relevant), 1: precision@1..4 = 1, 1/2, 2/3, 1/2"
    )
    assert metrics.precision_at_k(similarity, relevant, 2).shape == (2, 2), "k = 2 gives 2 columns"
    for where in [0, 2, 4]:  # the one relevant item first, in the middle, last: all tied
        tied = torch.zeros(1, 5, dtype=torch.bool)
        tied[0, where] = True
        got = metrics.precision_at_k(torch.zeros(1, 5), tied, 5)
        assert got.flatten().tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.2]), (
            f"relevant item {where} of 5, tied"
        )
    similarity, relevant = random_ties(50, 12, seed=0)
    got = metrics.precision_at_k(similarity, relevant, 6)
    for q in range(50):
        order = pessimistic_ranking(similarity[q].tolist(), relevant[q].tolist())
        hits = [int(relevant[q, i]) for i in order]
        assert got[q].tolist() == pytest.approx([sum(hits[:k]) / k for k in range(1, 7)]), (
            f"random query {q} with ties: precision@1..6 differs from a count, ties against the model"
        )


def test_exercise_average_precision_worked_cases_and_ties():
    """The mean of precision@rank over the ranks of the relevant items, NaN with no relevant item; ties count
    against the model. Worked by hand: a case where the interpolated (VOC-style) AP differs (relevance [0, 1,
    1]: 7/12, interpolated 2/3), tied relevant items (scikit-learn's per-threshold AP would give 2/3), the
    relevant item first, in the middle and last among ties; then 50 random queries with ties against a brute-
    force count and, without ties, scikit-learn. Catches: interpolated AP, dividing by the library size or by
    k instead of the number of relevant items, the mean over every rank, 0 instead of NaN, and ties broken any
    other way."""
    similarity = torch.tensor([[0.9, 0.1, 0.8, 0.3], [0.9, 0.1, 0.8, 0.3], [0.9, 0.1, 0.8, 0.3]])
    relevant = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    ap = metrics.average_precision(similarity, relevant)
    assert ap.shape == (3,), f"one AP per query: shape (3,) for 3 queries, not {tuple(ap.shape)}"
    assert ap[:2].tolist() == pytest.approx([(1 + 2 / 3) / 2, 1 / 4]), (
        "relevant items at ranks 1 and 3: AP (1/1 + 2/3) / 2; one at rank 4: 1/4"
    )
    assert torch.isnan(ap[2]), "a query with no relevant item: NaN (undefined), not 0"
    ranked = metrics.average_precision(torch.tensor([[0.9, 0.8, 0.7]]), torch.tensor([[False, True, True]]))
    assert ranked.item() == pytest.approx(7 / 12), "uninterpolated: (1/2 + 2/3) / 2"
    tied = metrics.average_precision(torch.zeros(1, 3), torch.tensor([[True, True, False]]))
    assert tied.item() == pytest.approx(7 / 12), "ties: the non-relevant item first"
    for where in [0, 2, 4]:
        one = torch.zeros(1, 5, dtype=torch.bool)
        one[0, where] = True
        assert metrics.average_precision(torch.zeros(1, 5), one).item() == pytest.approx(0.2), (
            f"5 tied items, the relevant one at position {where}: AP 1/5 (ties rank it last)"
        )
    similarity, relevant = random_ties(50, 12, seed=1)
    got = metrics.average_precision(similarity, relevant)
    for q in range(50):
        hits = [
            int(relevant[q, i]) for i in pessimistic_ranking(similarity[q].tolist(), relevant[q].tolist())
        ]
        precisions = [sum(hits[: r + 1]) / (r + 1) for r in range(12) if hits[r]]
        if precisions:
            assert got[q].item() == pytest.approx(sum(precisions) / len(precisions)), (
                f"random query {q} with ties: AP differs from a count, ties against the model"
            )
        else:
            assert math.isnan(got[q].item()), q
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    distinct = torch.rand(20, 12, generator=torch.Generator().manual_seed(2))  # no ties
    relevant = distinct.argsort(1) < 4  # 4 relevant items per query
    got = metrics.average_precision(distinct, relevant)
    for q in range(20):
        expected = sklearn_metrics.average_precision_score(relevant[q].numpy(), distinct[q].numpy())
        assert got[q].item() == pytest.approx(expected), (
            f"query {q} without ties: AP differs from scikit-learn's"
        )


def solution(module, qualified, source):
    """The function defined by `source`, compiled in a copy of `module`'s namespace (the names its file
    imports), to stand in for `qualified` ('name' or 'Class.name')."""
    namespace = dict(vars(module))
    exec(source, namespace)
    return namespace[qualified.split(".")[-1]]


@pytest.mark.filterwarnings("ignore:Converting a tensor")  # a wrong solution: float() of a grad tensor
@pytest.mark.parametrize(
    "blank",
    [
        "spectrogram",
        "pos_weight",
        "tt_agg_forward",
        "negative_sampling",
        "precision_at_k",
        "average_precision",
    ],
)
def test_the_kits_wrong_solutions_fail_and_right_ones_pass(blank, tiny, kit_dataset):
    """Every wrong solution in teaching/wrong_solutions.py (the teacher's) fails at least one of its blank's
    tests, and every correct one passes them all: the blank's tests (test_exercise_BLANK_*) run in this Python
    with the solution put in place of the project's function (a wrong one until the first test that catches
    it)."""
    import importlib
    import inspect
    import unittest.mock

    wrong_solutions = pytest.importorskip("teaching.wrong_solutions")  # not in a student's copy
    from teaching import make_student_copy

    file, qualified, _ = make_student_copy.BLANKS[blank]
    module = importlib.import_module(file[: -len(".py")])
    owner = module
    for name in qualified.split(".")[:-1]:  # a method: its class
        owner = getattr(owner, name)
    tests = [test for name, test in globals().items() if name.startswith(f"test_exercise_{blank}_")]
    fixtures = {"tiny": tiny, "kit_dataset": kit_dataset}
    assert tests
    outcomes = []
    for expected, name, source in wrong_solutions.SOLUTIONS[blank]:
        failed = []
        with unittest.mock.patch.object(owner, qualified.split(".")[-1], solution(module, qualified, source)):
            for test in tests:
                try:
                    test(**{arg: fixtures[arg] for arg in inspect.signature(test).parameters})
                except Exception:
                    failed.append(test.__name__)
                    break  # caught: the blank's other tests need not run
        outcomes.append((expected, name, failed))
    wrong = [(name, failed) for expected, name, failed in outcomes if expected == "wrong"]
    right = [(name, failed) for expected, name, failed in outcomes if expected == "right"]
    assert len(wrong) >= 7 and len(right) >= 2
    assert [name for name, failed in wrong if not failed] == [], "wrong solutions that pass"
    assert [(name, failed) for name, failed in right if failed] == [], "correct solutions that fail"


def test_the_kit_patches_apply_and_measure_refuses_before_any_work(tmp_path, monkeypatch, capsys):
    """Every reference solution still applies (so the kit cannot rot silently) and the measuring tool lists
    them all. teaching/measure.py refuses in one line, before any copying: bad seeds, --device cuda without a
    GPU, an OUT inside the project's sources, a copy folder or key.md in OUT that it did not write (left byte
    for byte); a patch that no longer applies ends in one line naming the command."""
    if not os.path.isdir(os.path.join(TEACHING, "patches")):
        pytest.skip("a student's copy: the reference solutions are the teacher's")
    import teaching.measure as measure

    patches = sorted(os.listdir(os.path.join(TEACHING, "patches")))
    assert [p[: -len(".patch")] for p in patches] == list(measure.EXERCISES) and len(patches) >= 8
    measure.copy_project(HERE, tmp_path / "copy")
    for patch in patches:
        r = subprocess.run(
            ["git", "apply", "--check", os.path.join(TEACHING, "patches", patch)],
            cwd=tmp_path / "copy",
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, (patch, r.stderr)
    out = tmp_path / "key"
    (out / "copies" / "baseline").mkdir(parents=True)
    (out / "copies" / "baseline" / "notes.txt").write_text("mine")
    check_refused(run_here("teaching/measure.py", "--out", out), "baseline")
    (out / "copies" / "baseline" / "notes.txt").unlink()
    (out / "copies" / "baseline").rmdir()
    (out / "key.md").write_text("# my key\n")
    check_refused(run_here("teaching/measure.py", "--out", out), "key.md")
    assert (out / "key.md").read_text() == "# my key\n" and sorted(os.listdir(out)) == ["copies", "key.md"]
    for flags, fact in [
        (["--seeds", "-1"], "--seeds"),
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "0", "0"], "--seeds"),
        (["--epochs", "0"], "--epochs"),
        (["--out", os.path.join(HERE, "teaching", "mykey")], "inside the project"),
        (["01-nothing"], "01-nothing"),
    ] + [(["--device", "cuda"], "--device cuda")] * (not torch.cuda.is_available()):
        quick = ["--epochs", "1", "--videos", "10", "--out", tmp_path / "fresh"]  # a case let through: quick
        check_refused(run_here("teaching/measure.py", *quick, *flags), fact)
    assert not (tmp_path / "fresh").exists() and not os.path.exists(os.path.join(HERE, "teaching", "mykey"))
    stale = tmp_path / "patches"
    stale.mkdir()
    (stale / "08-mel-bands.patch").write_text(
        "--- a/data.py\n+++ b/data.py\n@@ -1,1 +1,1 @@\n-no such line\n+another\n"
    )
    monkeypatch.setattr(measure, "PATCHES", str(stale))
    with pytest.raises(SystemExit) as e:
        measure.main(["08-mel-bands", "--videos", "10", "--epochs", "1", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "git apply" in err and "08-mel-bands.patch" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path / "m" / "copies") == ["baseline"], "the failed copy is not left half-made"
    monkeypatch.undo()

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(measure, "run", interrupt)  # Ctrl-C as the first run starts
    with pytest.raises(SystemExit) as e:
        measure.main(["08-mel-bands", "--videos", "10", "--epochs", "1", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert e.value.code == 130 and len(err.strip().splitlines()) == 1, err
    copies = tmp_path / "m" / "copies"
    assert sorted(os.listdir(copies)) == ["08-mel-bands", "baseline"], (
        "the earlier copy replaced: it was ours"
    )
    assert all(ownership.read_manifest(copies / name, measure.PROGRAM) for name in os.listdir(copies)), (
        "each copy whole"
    )


def test_measure_checks_every_log_and_run_folder_before_any_work(tmp_path):
    """teaching/measure.py works out every path its runs will write (each seed's log and run folder) and
    refuses one it did not write in one line, before the first copy: not after hours of earlier runs."""
    if not os.path.isdir(os.path.join(TEACHING, "patches")):
        pytest.skip("a student's copy: the reference solutions are the teacher's")
    out = tmp_path / "key"
    quick = ["08-mel-bands", "--splits", "6", "5", "5", "--epochs", "1", "--out", out]  # let through: quick
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "08-mel-bands-seed2.txt").write_text("my notes\n")  # the log it would write last
    check_refused(run_here("teaching/measure.py", *quick), "08-mel-bands-seed2.txt")
    assert (out / "logs" / "08-mel-bands-seed2.txt").read_text() == "my notes\n"
    (out / "logs" / "08-mel-bands-seed2.txt").unlink()
    (out / "runs" / "baseline-sound_only" / "sound_only-resnet-seed1").mkdir(
        parents=True
    )  # not a run of ours
    check_refused(run_here("teaching/measure.py", *quick), "sound_only-resnet-seed1")
    assert sorted(os.listdir(out)) == ["logs", "runs"] and os.listdir(out / "logs") == [], "no work done"


def test_measure_ends_its_training_run_on_sigterm(tmp_path):
    """SIGTERM (what a scheduler or `timeout` sends) to teaching/measure.py alone, while a run trains: the run
    is ended too (no training goes on behind it), in one line, exit 130, and no half-made run folder."""
    if not os.path.isdir(os.path.join(TEACHING, "patches")):
        pytest.skip("a student's copy: the reference solutions are the teacher's")
    out = tmp_path / "key"
    flags = ["08-mel-bands", "--splits", "6", "5", "5", "--epochs", "1000", "--seeds", "0", "1"]
    p = subprocess.Popen(
        [sys.executable, "teaching/measure.py", *flags, "--device", "cpu", "--out", str(out)],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "logs" / "baseline-sound_only-seed0.txt"
    deadline = time.time() + 300
    while time.time() < deadline and "epoch  1/1000" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.5)  # until the first run has trained an epoch

    def children():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == p.pid:
                    found.append(pid)
        return found

    training = children()
    try:
        assert training and p.poll() is None, "a run is training"
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        left = [pid for pid in training if os.path.exists(f"/proc/{pid}")]
    finally:  # nothing of the test left running, whatever it found
        for pid in [p.pid, *training]:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    assert p.returncode == 130 and len(err.strip().splitlines()) == 1, err
    assert not left, "the run ended with it"
    runs = out / "runs" / "baseline-sound_only"
    assert not runs.exists() or os.listdir(runs) == [], "no run folder, whole or half"


def measured_answers():
    """The key's measured answers: KEY.md's signed differences and intervals, key.json's raw values (a patched
    arm's "mean ± std" alone is left out: it can equal an unrelated number of the README by chance)."""
    answers = set()
    with open(os.path.join(TEACHING, "KEY.md"), encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.split("|")]
            if len(cells) == 10 and cells[1][:2].isdigit():
                answers.update(c for c in cells[6:8] if c.strip("+-0.±[], "))  # not "+0.000 ± 0.000"
    with open(os.path.join(TEACHING, "key.json"), encoding="utf-8") as f:
        key = json.load(f)["key"]
    for numbers in key.values():
        answers.update(repr(v) for arms in numbers.values() for v in arms["patched"] if len(repr(v)) > 8)
    return answers


def test_the_student_copy_holds_no_key_and_is_a_git_repository_with_one_commit(tmp_path):
    """No file of the key, the patches, the teacher's page or the grading in the copy, and no measured answer
    (KEY.md's differences and intervals, key.json's raw values) in any file it holds; the copy is a
    git repository with one commit and nothing uncommitted, made without a git configuration."""
    if not os.path.isfile(os.path.join(TEACHING, "KEY.md")):
        pytest.skip("a student's copy: the key is the teacher's")
    from teaching import make_student_copy as msc

    answers = measured_answers()
    assert len(answers) > 40
    out = tmp_path / "student"
    env = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}  # no git identity anywhere
    r = subprocess.run(
        [sys.executable, "teaching/make_student_copy.py", out],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    for path in msc.TEACHER_ONLY:
        assert not (out / path).exists(), path
    assert (out / "teaching" / "compare.py").exists() and (out / "teaching" / "README.md").exists()
    for root, dirs, names in os.walk(out):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            text = open(os.path.join(root, name), encoding="utf-8", errors="replace").read()
            found = [a for a in answers if a in text]
            assert not found, (os.path.join(root, name), found[:3])
    log = subprocess.run(["git", "log", "--format=%an %s"], cwd=out, capture_output=True, text=True, env=env)
    assert len(log.stdout.splitlines()) == 1 and log.stdout.startswith("matsound"), log
    status = subprocess.run(["git", "status", "--porcelain"], cwd=out, capture_output=True, text=True)
    assert status.returncode == 0 and status.stdout == "", status


def test_pytest_k_blank_selects_only_that_blanks_tests():
    """`pytest test_all.py -k BLANK`, as a student runs it, selects that blank's tests (test_exercise_BLANK_*)
    and no test that needs another blank (a name holding a blank's name is that blank's test), besides the
    teacher's check of the wrong solutions, which a student's copy skips."""
    from teaching import make_student_copy as msc

    for name in [n for n in globals() if n.startswith("test_")]:
        for blank in msc.BLANKS:
            if blank in name and name != "test_the_kits_wrong_solutions_fail_and_right_ones_pass":
                assert name.startswith(f"test_exercise_{blank}_"), f"-k {blank} selects {name}"


def test_the_student_copy_is_made_from_the_commit_passes_its_own_ci_and_carries_classroom_grading(tmp_path):
    """The copy holds what the teacher's last commit holds: not an untracked file of the teacher's (answers,
    grades) nor an uncommitted change. After blanking it passes its own formatter and linter (no import left
    unused, the raise laid out as the formatter does), its tests spell out no spectrogram recipe, its README
    names no file it lacks, and it carries
    GitHub Classroom's autograding: one test per blank with its points, running that blank's tests only."""
    if not os.path.isfile(os.path.join(TEACHING, "KEY.md")):
        pytest.skip("a student's copy: copies are made by the teacher")
    from teaching import make_student_copy as msc

    teacher = tmp_path / "teacher"
    subprocess.run(["git", "clone", "-q", HERE, teacher], check=True, capture_output=True)
    (teacher / "teaching" / "answers-2025.md").write_text("the answers\n")
    (teacher / "grades.csv").write_text("alice,13\n")
    with open(teacher / "data.py", "a") as f:
        f.write("# uncommitted\n")
    r = subprocess.run(
        [sys.executable, "teaching/make_student_copy.py", tmp_path / "hw"],
        cwd=teacher,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "uncommitted" in r.stdout, r.stderr
    out = tmp_path / "hw"
    assert not (out / "teaching" / "answers-2025.md").exists() and not (out / "grades.csv").exists()
    assert "# uncommitted" not in (out / "data.py").read_text()
    ruff = pytest.importorskip("ruff")  # noqa: F841  (a dev dependency: CI has it)
    for check in [["format", "--check", "."], ["check", "."]]:
        lint = subprocess.run([sys.executable, "-m", "ruff", *check], cwd=out, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    used = {
        n.attr for n in ast.walk(ast.parse((out / "test_all.py").read_text())) if isinstance(n, ast.Attribute)
    }
    assert not used & {"Spectrogram", "MelScale", "MelSpectrogram", "stft"}, (
        "a recipe spelled out in the copy"
    )
    assert (out / "teaching" / "spectrogram_cases.pt").exists(), "the spectrogram test's stored images"
    readme = (out / "README.md").read_text()
    assert not [p for p in msc.TEACHER_ONLY if p in readme], "the README names a teacher's file"
    for link in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (out / link).exists(), f"the README links to {link}, which the copy does not hold"
    autograding = json.loads((out / ".github" / "classroom" / "autograding.json").read_text())
    assert {t["name"]: t["points"] for t in autograding["tests"]} == msc.POINTS
    assert all(f"-k test_exercise_{t['name']}_" in t["run"] for t in autograding["tests"])
    workflow = (out / ".github" / "workflows" / "classroom.yml").read_text()
    assert all(f"max-score: {points}" in workflow for points in msc.POINTS.values())


def test_make_student_copy_refuses_in_one_line_and_leaves_nothing_after_ctrl_c(tmp_path, monkeypatch):
    """An existing folder, a folder inside the project (directly or through a link) are refused before any
    work; a user's `OUT.partial` beside it is never touched; Ctrl-C leaves nothing behind and exits 130."""
    from teaching import make_student_copy as msc

    (tmp_path / "hw.partial").mkdir()
    (tmp_path / "hw.partial" / "mine.txt").write_text("mine")
    (tmp_path / "taken").mkdir()
    check_refused(run_here("teaching/make_student_copy.py", tmp_path / "taken"), "taken")
    check_refused(
        run_here("teaching/make_student_copy.py", os.path.join(HERE, "dataset_sources", "s")), "inside"
    )
    os.symlink(HERE, tmp_path / "link")
    check_refused(run_here("teaching/make_student_copy.py", tmp_path / "link" / "student"), "inside")
    check_refused(run_here("teaching/make_student_copy.py", tmp_path / "hw", "--only", "nothing"), "nothing")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(msc.subprocess, "run", interrupt)  # Ctrl-C as git starts
    with pytest.raises(SystemExit) as e:
        msc.main([str(tmp_path / "hw")])
    assert e.value.code == 130
    assert sorted(os.listdir(tmp_path)) == ["hw.partial", "link", "taken"]
    assert (tmp_path / "hw.partial" / "mine.txt").read_text() == "mine"
    assert not os.path.exists(os.path.join(HERE, "dataset_sources", "s"))


def test_the_student_copy_blanks_functions_its_scripts_run_and_compare_measures_a_change(tmp_path, tiny):
    """The copy keeps every signature and docstring, its blanked code stops with the exercise's message while
    the untouched scripts train; in the copy, teaching/compare.py runs the changed working tree against the
    commit over two seeds, prints both arms, the paired difference, its interval and a verdict, and leaves the
    student's files as they were; bad arguments end in one line."""
    import ast

    from teaching import make_student_copy as msc

    out = tmp_path / "student"
    assert run("teaching/make_student_copy.py", out).returncode == 0
    for name, (file, qualified, _) in msc.BLANKS.items():
        original = msc.find(ast.parse(open(os.path.join(HERE, file)).read()), qualified)
        blanked = msc.find(ast.parse((out / file).read_text()), qualified)
        assert ast.dump(original.args) == ast.dump(blanked.args)
        assert ast.get_docstring(original) == ast.get_docstring(blanked)
        assert isinstance(blanked.body[-1], ast.Raise) and name in ast.unparse(blanked.body[-1])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1"}

    def in_copy(copy, *argv):
        return subprocess.run(
            [sys.executable, *map(str, argv)], cwd=copy, env=env, capture_output=True, text=True, timeout=900
        )

    stopped = in_copy(out, "visual_only.py", "--epochs", "1", "--data", tiny, "--out", tmp_path / "r")
    assert stopped.returncode != 0 and "exercise spectrogram" in stopped.stderr, stopped.stderr
    partial = tmp_path / "partial"
    assert (
        run("teaching/make_student_copy.py", partial, "--only", "pos_weight", "precision_at_k").returncode
        == 0
    )
    flags = ["--epochs", "1", "--data", tiny]
    blank = in_copy(partial, "visual_only.py", *flags, "--weighted", "--out", tmp_path / "r")
    assert blank.returncode != 0 and "exercise pos_weight" in blank.stderr and "-k pos_weight" in blank.stderr
    source = (partial / "sound_only.py").read_text()
    changed = source.replace("momentum=args.momentum)", "momentum=0.0)  # my change: no momentum")
    assert changed != source
    (partial / "sound_only.py").write_text(changed)
    (partial / "my-notes.txt").write_text("untracked: not part of either arm")
    before = snapshot(partial)
    relative = ["--epochs", "1", "--data", os.path.relpath(tiny, partial)]  # made absolute before the copies
    r = in_copy(partial, "teaching/compare.py", "--seeds", "0", "1", "--", "sound_only.py", *relative)
    assert r.returncode == 0, r.stderr
    table = r.stdout[r.stdout.index("unchanged (HEAD)") :]
    assert "test.accuracy" in table and "±" in table and "too few seeds" in table, r.stdout
    kept = partial / "runs" / "compare"
    assert before == {p: s for p, s in snapshot(partial).items() if not p.startswith(str(kept))}, "untouched"
    assert "momentum=0.0)  # my change" in (kept / "changed" / "sound_only.py").read_text()
    assert not (kept / "changed" / "my-notes.txt").exists(), "an untracked file in the changed arm"
    assert len(glob.glob(str(kept / "*" / "runs-1" / "*" / "metrics.json"))) == 2
    assert "test.accuracy" in (kept / "comparison.txt").read_text()
    unwritten = in_copy(out, "teaching/compare.py", "--seeds", "0", "1", "--", "sound_only.py", *flags)
    lines = unwritten.stderr.strip().splitlines()
    assert unwritten.returncode == 1 and len(lines) == 1 and "spectrogram" in lines[0], unwritten.stderr
    assert "-k spectrogram" in lines[0] and not (out / "runs" / "compare").exists(), "nothing kept"
    for argv, fact in [
        (["--seeds", "-1", "0", "--", "sound_only.py"], "--seeds"),
        (["--seeds", "0", "1", "--", "nothere.py"], "script"),
        (["--seeds", "0", "1", "--", "sound_only.py", "--seed", "3"], "--seed"),
        (["--number", "accuracy", "--", "sound_only.py"], "accuracy"),
    ]:
        check_refused(in_copy(partial, "teaching/compare.py", *argv), fact)


KIT_FILES = {"data.py", "visual_only.py", "tt_agg.py", "metrics.py"}  # the blanks' files


def handed_in(folder, edits=None, blanked=()):
    """A student's copy as handed in, in `folder`: the blanks' files of this project, the blanks in `blanked`
    left blank, and `edits` ({file: text -> text}) applied."""
    from teaching import make_student_copy as msc

    folder.mkdir(parents=True)
    for file in KIT_FILES:
        text = open(os.path.join(HERE, file), encoding="utf-8").read()
        for name in blanked:
            if msc.BLANKS[name][0] == file:
                text = msc.blank(text, msc.BLANKS[name][1], name, msc.BLANKS[name][2])
        (folder / file).write_text((edits or {}).get(file, lambda t: t)(text))
    return folder


def replaced(qualified, source, after=""):
    """An edit: the definition of `qualified` replaced by `source`, and `after` appended to the file."""

    def edit(text):
        from teaching import grade  # the teacher's, imported when a test edits (not in a student's copy)

        return grade.transplant(text, textwrap.dedent(source), qualified) + after

    return edit


def test_grading_takes_only_the_blanks_function_and_what_it_uses(tmp_path):
    """What grade.py carries from a student's file into graded/BLANK.py: the last definition, the imports,
    helpers and constants (annotated too) it uses wherever they are in the file, `from __future__` first;
    never another top-level statement (a line that changes pytest), never an import of the tests. grade.py
    lists every blank's tests in advance (TESTS): they are the test_exercise_* tests of this file. The grading
    copy holds no teaching file and no reference function (every blank is blank in it)."""
    if not os.path.isfile(os.path.join(TEACHING, "grade.py")):
        pytest.skip("a student's copy: grading is the teacher's")
    from teaching import grade

    student = textwrap.dedent('''
        """My file."""
        from __future__ import annotations

        import os
        import pytest

        pytest.Function.runtest = lambda self: None
        print("hello")


        def f(x):
            raise NotImplementedError("exercise f")


        def f(x):
            return helper(x) * SCALE


        def helper(x):
            return os.fspath(x)


        SCALE: int = 2
        UNUSED = 3
        ''')
    base = tmp_path / "base"
    grade.base_copy(base)
    assert not [p for p in grade.TEACHER_ONLY if (base / p).exists()] and (base / "grade_plugin.py").exists()
    for file, qualified, _ in grade.BLANKS.values():
        assert grade.is_blank(grade.last_definition(ast.parse((base / file).read_text()), qualified)), (
            qualified
        )
    listed = {test for tests in grade.TESTS.values() for test in tests}
    assert listed == {name for name in globals() if name.startswith("test_exercise_")}, "TESTS, in advance"
    module = grade.carried(student, "f", "mine.py")
    assert module.startswith("from __future__ import annotations\n"), module
    assert "SCALE: int = 2" in module and "def helper" in module and "import os" in module, module
    assert "runtest" not in module and "print" not in module and "UNUSED" not in module, module
    assert "NotImplementedError" not in module, "the last definition of f only (the first is overridden)"
    namespace = {}
    exec(module, namespace)
    assert namespace["f"]("ab") == "abab"
    for source, fact in [
        ("def f(x):\n    raise NotImplementedError('exercise f')\n", "not written"),
        ("def g(x):\n    return x\n", "f is not in"),
        ("def f(x:\n", "does not parse"),
        ("from test_all import log_mel_by_hand\n\n\ndef f(x):\n    return log_mel_by_hand(x)\n", "test_all"),
        ("import test_all\n\n\ndef f(x):\n    return test_all.log_mel_by_hand(x)\n", "test_all"),
    ]:
        with pytest.raises(grade.NotGradable, match=fact):
            grade.carried(source, "f", "mine.py")


def test_a_class_is_graded_in_parallel_cheats_get_nothing_correct_code_in_any_style_everything(
    tmp_path, monkeypatch
):
    """`grade.py SUBMISSIONS --out RESULTS --jobs 2` on three students: one who cheats in every blank (a fake
    pytest summary, a top-level line that turns tests into no-ops, a solution run from the teaching files,
    a skip inside the test, files written through its parent process and the environment shown, a row of the
    key in its reason) gets 0 in each and leaves no file outside its grading folder; one whose correct code
    is in other styles (`from __future__`, an annotated constant below its use, a helper and an import at the
    bottom, the blank left above a second definition) gets every point; a placeholder (torch.ones(17)) gets at
    most a fifth of its blank. results.json is in Gradescope's format, without the key or the teacher's
    environment in it, and a second run writes the same bytes."""
    if not os.path.isfile(os.path.join(TEACHING, "grade.py")):
        pytest.skip("a student's copy: grading is the teacher's")
    from teaching import grade
    from teaching.wrong_solutions import CHEATS, STYLES, TOKEN

    cheats = {}
    for file, qualified, source, after in CHEATS.values():
        before = cheats.get(file, lambda t: t)
        cheats[file] = lambda t, b=before, q=qualified, s=source, a=after: replaced(q, s, a)(b(t))
    subs = tmp_path / "class"
    handed_in(subs / "cheater", cheats)
    handed_in(subs / "stylish", STYLES, blanked=["pos_weight"])
    placeholder = replaced("positive_weights", "def positive_weights(labels):\n    return torch.ones(17)\n")
    handed_in(subs / "placeholder", {"visual_only.py": placeholder}, blanked=grade.BLANKS)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mine.csv").write_text("a user's file")
    check_refused(run_here("teaching/grade.py", subs, "--out", tmp_path / "results"), "results")
    for flags, fact in [(["--timeout", "nan"], "--timeout"), (["--timeout", "inf"], "--timeout")]:
        check_refused(run_here("teaching/grade.py", subs, "--out", tmp_path / "r", *flags), fact)
    check_refused(run_here("teaching/grade.py", tmp_path / "results", "--out", tmp_path / "r"), "sub-folder")
    check_refused(run_here("teaching/grade.py", subs, "--out", subs / "results"), "inside")
    monkeypatch.setenv("MATSOUND_TEACHERS_OWN", "secret")
    monkeypatch.chdir(tmp_path)  # where a cheat that finds its grader's folder would write
    r = run_here("teaching/grade.py", "class", "--out", "graded", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "graded"
    results = {name: json.loads((out / name / "results.json").read_text()) for name in os.listdir(subs)}
    for result in results.values():
        assert set(result) == {"score", "output", "tests"}, result
        assert [t["name"] for t in result["tests"]] == list(grade.POINTS), result
        assert all(set(t) == {"name", "score", "max_score", "output"} for t in result["tests"]), result
    assert {t["name"]: t["score"] for t in results["cheater"]["tests"]} == dict.fromkeys(grade.POINTS, 0), (
        results["cheater"]
    )
    assert results["stylish"]["score"] == 13, results["stylish"]
    placeholder_points = {t["name"]: t["score"] for t in results["placeholder"]["tests"]}
    assert 0 < placeholder_points["pos_weight"] <= grade.POINTS["pos_weight"] / 5, results["placeholder"]
    shown = json.dumps(results)
    assert "not written" in shown and "the weight is not capped" not in shown
    assert "environment: " in shown and "MATSOUND_TEACHERS_OWN" not in shown, "the teacher's environment"
    assert not [a for a in measured_answers() if a in shown] and "| 02-" not in shown, "the key in a reason"
    places = [tmp_path, HERE, os.path.expanduser("~"), tempfile.gettempdir(), os.getcwd()]
    assert not [p for p in places if os.path.exists(os.path.join(p, TOKEN))], "a file outside its folder"
    assert not os.path.exists(os.path.join(HERE, "teaching", TOKEN))
    rows = list(csv.DictReader(open(out / "grades.csv")))
    assert [row["name"] for row in rows] == ["cheater", "placeholder", "stylish"]
    assert float(rows[2]["score"]) == 13 and float(rows[0]["score"]) == 0, rows
    first = {name: (out / name / "results.json").read_bytes() for name in ["cheater", "placeholder"]}
    shutil.rmtree(subs / "stylish")
    assert run_here("teaching/grade.py", subs, "--out", out, "--jobs", "2").returncode == 0
    assert first == {name: (out / name / "results.json").read_bytes() for name in first}, "a second run"
    assert sorted(os.listdir(out)) == [".matsound-manifest.json", "cheater", "grades.csv", "placeholder"]


def test_grade_one_copy_prints_its_table_stops_a_hang_and_refuses_in_one_line(tmp_path, monkeypatch):
    """The single-copy form: the points table (and JSON with the project's mark, never over a file that is
    not ours); a blank whose tests run past --timeout is stopped, its process group killed, 0 with the
    reason; a copy that is not one, a missing copy, --timeout nan or inf end in one line. Ctrl-C while a
    class is graded exits 130 and writes nothing."""
    if not os.path.isfile(os.path.join(TEACHING, "grade.py")):
        pytest.skip("a student's copy: grading is the teacher's")
    hang = "def average_precision(similarity, relevant):\n    while True:\n        pass\n"
    copy = handed_in(tmp_path / "alice", {"metrics.py": replaced("average_precision", hang)})
    (tmp_path / "mine.json").write_text('{"grades": 1}')
    check_refused(run_here("teaching/grade.py", copy, "--json", tmp_path / "mine.json"), "mine.json")
    only = ["--only", "average_precision", "--timeout", "5"]
    r = run_here("teaching/grade.py", copy, *only, "--json", tmp_path / "alice.json")
    assert r.returncode == 0 and "0.00 / 2" in r.stdout and "time limit (5 s)" in r.stdout, r.stdout
    table = json.loads((tmp_path / "alice.json").read_text())
    assert table["written_by"].startswith("matsound") and table["of"] == 2 and table["total"] == 0
    check_refused(run_here("teaching/grade.py", tmp_path / "nobody"), "nobody")
    check_refused(run_here("teaching/grade.py"), "--check-kit")
    for value in ["nan", "inf", "-1"]:
        check_refused(run_here("teaching/grade.py", copy, "--timeout", value), "--timeout")
    from teaching import grade

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(grade, "run_tests", interrupt)  # Ctrl-C as the first graded Python starts
    with pytest.raises(SystemExit) as e:
        grade.main([str(tmp_path), "--out", f"{tmp_path}-results", "--jobs", "2"])
    assert e.value.code == 130 and not os.path.exists(f"{tmp_path}-results")
    assert sorted(os.listdir(tmp_path)) == ["alice", "alice.json", "mine.json"], "nothing half-written"


def test_the_notebook_runs_the_main_job_the_retrieval_and_plays_the_sounds(tmp_path):
    """teaching/matsound.ipynb, executed top to bottom on the CPU with a tiny toy and one epoch (its parameter
    cell rewritten), so that it cannot drift from the scripts: the host's torch is the pinned one, so nothing
    is installed; the runs' output is printed; the five retrieved WAVs play beside the query image; the
    exercises and the comparison command are named. nbclient is a test-only dependency."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(os.path.join(TEACHING, "matsound.ipynb"), as_version=4)
    [parameters] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = (
        f'REPO_URL = ""\nSPLITS = "12 6 6"\nEPOCHS = 1\nK = 5\nDEVICE = "cpu"\nRUNS = {str(tmp_path)!r}'
    )
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": TEACHING}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "Table 5 (TT_AGG)" in outputs and "precision@" in outputs.lower(), outputs[-2000:]
    assert "epoch  1/1" in outputs and "installing" not in outputs, outputs[:2000]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3, "the curves, the precision@K curve and the top-5 sheet"
    html = "".join(o.get("data", {}).get("text/html", "") for c in code for o in c.outputs)
    assert html.count("<audio") == 5 and html.count("data:image/png;base64") == 1, html[:500]
    markdown = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "README.md" in markdown and "teaching/compare.py" in markdown


# --- benchmarks/: the throughput table, and the GPU study run at tiny sizes on the CPU ---------------------


def test_throughput_counts_gflop_per_sample_and_finds_the_cards_peak():
    """FLOPs of one forward and backward pass per sample: ResNet-18's forward pass at 224 px is the well-known
    1.8 GMAC (3.6 GFLOP); a backward pass costs about twice a forward, and a pair goes through two towers, so
    about 21 GFLOP; VGG-11-BN's convolutions are about 4x ResNet-18's. The peak is the card's, never a
    neighbour's (an L40S is not an L4), and a card not in the table is said to be unknown."""
    sound = throughput.gflop_per_sample("sound_only", "resnet", 224)
    pair = throughput.gflop_per_sample("tt_agg", "resnet", 224)
    assert (
        3.4 < sound / 3 < 3.8
        and 20 < pair < 22
        and 84 < throughput.gflop_per_sample("tt_agg", "vgg", 224) < 94
    )
    assert throughput.gflop_per_sample("tt_agg", "resnet", 32) == pytest.approx(
        pair * (32 / 224) ** 2, rel=0.1
    )
    names = {
        "NVIDIA H100 80GB HBM3": 989,
        "NVIDIA H100 PCIe": 756,
        "NVIDIA H200": 989,
        "NVIDIA A100-SXM4-80GB": 312,
        "NVIDIA L4": 121,
        "NVIDIA L40S": None,
        "Tesla T4": 65,
        "NVIDIA GeForce RTX 4090": 165,
        "NVIDIA GeForce RTX 4080": None,
    }
    assert {name: throughput.peak_tflops(name) for name in names} == names
    row = {"experiment": "tt_agg", "backbone": "resnet", "script_per_s": 9000.0, "model_per_s": 10000.0}
    row.update({"ratio": 0.9, "gflop_per_sample": 21.0, "model_tflops": 210.0, "warm_up_s": 2.0})
    row.update({"peak_mib": 900.0, "fraction_of_peak": 210.0 / throughput.peak_tflops("NVIDIA H200")})
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert throughput.format_row(row, cuda).split()[-1] == "21.2%" and "%" not in throughput.format_row(
        row, cpu
    )
    assert throughput.format_row({**row, "fraction_of_peak": None}, cuda).endswith("unknown card")


def gpu_study(out, part="all", **settings):
    """`bash benchmarks/gpu_study.sh` at tiny sizes on the CPU: sound_only with ResNet, two seeds, one epoch;
    started in its own process group (so that a test can press Ctrl-C), with PYTHONUNBUFFERED set."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", "OUT": str(out), "PART": part}
    env.update({"VIDEOS": "24", "SIZE": "32", "EPOCHS": "1", "DEVICE": "cpu", "SEEDS": "0 1"})
    env.update({"SCRIPTS": "sound_only", "BACKBONES": "resnet", **settings})
    command = ["bash", "benchmarks/gpu_study.sh", "--throughput-epochs", "2"]
    pipe = subprocess.PIPE
    return subprocess.Popen(
        command,
        cwd=HERE,
        env=env,
        stdout=pipe,
        stderr=pipe,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's program starts
    )


def test_gpu_study_runs_its_parts_and_after_ctrl_c_redoes_nothing_finished(tmp_path):
    """The first call is interrupted (Ctrl-C to its process group) once the first run is saved: one line, exit
    130, nothing half-written. The second continues: the toy reused, the throughput kept, the finished run
    skipped and left byte for byte, the other run made, the summary printed; each call has a results file."""
    out = tmp_path / "gpu"
    first = gpu_study(out)
    saved = out / "sound_only-resnet-seed0"
    while not (saved / "metrics.json").exists() and first.poll() is None:
        time.sleep(0.1)
    before = snapshot(saved)
    os.killpg(first.pid, signal.SIGINT)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 130 and stderr.startswith("interrupted") and stderr.count("\n") == 1, stderr
    assert not [name for name in os.listdir(out) if name.startswith(".tmp-")]
    header, row = [
        line.split() for line in stdout.splitlines() if line.startswith(("experiment ", "sound_only "))
    ]
    gflop = throughput.gflop_per_sample("sound_only", "resnet", 32)
    assert "GFLOP/smp" in header and float(row[header.index("GFLOP/smp")]) == pytest.approx(gflop, abs=0.01)

    second = gpu_study(out)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0 and stderr == "", stderr
    for said in [
        "is there (built earlier): reused",
        "(measured earlier): kept",
        "seed0 skipped: finished earlier",
    ]:
        assert said in stdout, said
    assert "sound_only-resnet-seed1 finished in" in stdout and "Table 2" in stdout
    assert snapshot(saved) == before
    summary = [line.split()[1:] for line in stdout.splitlines() if "] sound_only-resnet-seed" in line]
    assert len(summary) == 2 and all(len(cells) == 7 and float(cells[2]) > 0 for cells in summary), summary
    results = sorted(name for name in os.listdir(out) if name.startswith("gpu_study-"))
    assert len(results) == 2 and "interrupted" in (out / results[0]).read_text().splitlines()[-1]


@pytest.mark.parametrize("case", ["top of the file system", "sources", "link into the sources", "not ours"])
def test_gpu_study_refuses_an_out_it_must_not_write_before_any_work(case, tmp_path):
    """OUT at the top of the file system or in the project's sources (through a link too), or holding a file
    named like one this program replaces but not of ours: one line, exit 2, nothing written."""
    out = {"top of the file system": "/", "sources": os.path.join(HERE, "benchmarks", "out")}.get(case)
    if case == "link into the sources":
        os.symlink(os.path.join(HERE, "study"), tmp_path / "link")
        out = tmp_path / "link" / "out"
    if case == "not ours":
        out = tmp_path / "gpu"
        out.mkdir()
        (out / "throughput.json").write_text('{"mine": 1}')
    before = snapshot(HERE, tmp_path)
    r = gpu_study(out)
    stdout, stderr = r.communicate(timeout=120)
    check_refused(subprocess.CompletedProcess([], r.returncode, stdout, stderr), out)
    assert snapshot(HERE, tmp_path) == before


@pytest.mark.parametrize("budget", ["nan", "inf", "-1"])
def test_gpu_study_refuses_a_budget_that_is_not_a_number_of_seconds(budget, tmp_path):
    """NaN passes every `< 0` check: refused in one line, like infinity and a negative budget."""
    r = run_here("benchmarks/gpu_study.py", "--budget", budget, "--out", tmp_path / "gpu", "--device", "cpu")
    check_refused(r, "--budget", budget)
    assert not (tmp_path / "gpu").exists()


def test_gpu_study_keeps_earlier_results_when_a_call_fails(tmp_path):
    """A call that fails (the study part before the toy is built) says so in one line and in a results file of
    its own; an earlier call's results file and times file are left byte for byte."""
    out = tmp_path / "gpu"
    out.mkdir()
    for name in ["gpu_study.txt", "gpu_study-20260101-120000-all.txt"]:  # an older version's name, this one's
        (out / name).write_text(
            "written by matsound: benchmarks/gpu_study.py --part all\nthe H100's numbers\n"
        )
    (out / "gpu_study_times.json").write_text(
        '{"written_by": "matsound benchmarks/gpu_study.py", "runs": {}}'
    )
    before = snapshot(out)
    r = gpu_study(out, part="study", VIDEOS="11")
    stdout, stderr = r.communicate(timeout=120)
    assert r.returncode == 1 and stderr.startswith("error: no dataset at") and stderr.count("\n") == 1, stderr
    assert snapshot(out).items() >= before.items() and len(os.listdir(out)) == 4


# --- The project as a whole -------------------------------------------------------------------------------


def test_every_torch_load_of_the_project_is_weights_only():
    """A dataset or checkpoint from a stranger is data, never code: every load in the project says so."""
    sources = [
        os.path.join(root, name)
        for root, _, names in os.walk(HERE)
        for name in names
        if name.endswith(".py") and name != "test_all.py"
    ]
    assert len(sources) >= 14
    for path in sources:
        source = open(path).read()
        for call in re.findall(r"torch\.load\([^)]*\)", source):
            assert "weights_only=True" in call, (path, call)
        assert "pickle.load" not in source, path


def test_the_project_refers_to_no_document_outside_it():
    """Users get the project alone: no file points at notes that only its developers had."""
    names = [
        "shared" + "/",
        "GREATEST_HITS" + ".md",
        "STYLE" + ".md",
        "DESIGN" + ".md",
    ]  # split: not found here
    pattern = re.compile("|".join(map(re.escape, names)))
    for root, dirs, names in os.walk(HERE):
        dirs[:] = [d for d in dirs if d not in {".git", "data", "runs", "__pycache__", ".pytest_cache"}]
        for name in names:
            if name.endswith((".py", ".md", ".ipynb", ".sh", ".txt")):
                path = os.path.join(root, name)
                assert not pattern.search(open(path, errors="replace").read()), path


# Imports run one way, bottom up: a module imports only from the floors below it (or, in a folder, from its
# own folder), so the training path can be read (and copied) without what is built around it, and no two
# modules import each other. The floors: the ownership rule; the dataset's sources and contract; data and
# backbones; metrics; the experiment scripts and retrieve.py; the folders around them.
FLOORS = {
    "safe_files": 0,
    "dataset_sources": 1,
    "data": 2,
    "backbones": 2,
    "metrics": 3,
    "retrieve": 4,
    **{s[:-3]: 4 for s in SCRIPTS},
    "study": 5,
    "teaching": 5,
    "benchmarks": 5,
}
SCRIPT_NAMES = [s[:-3] for s in SCRIPTS]
FOLDERS = [
    "safe_files",
    "dataset_sources",
    "study",
    "teaching",
    "benchmarks",
]  # their modules import each other
TOP = 5  # the folders around the training path: they may import anything below, and each other
# The imports allowed to run up a floor (each inside a function, never at module level): none.
LAZY = {}


def project_imports():
    """{module: [(imported project module, line, at module level?)]} for every .py file of the project, read
    with `ast`: `import x`, `import x.y`, `from x import y`, `from x.y import z`, at any depth; plus every
    `__import__` or `importlib` call, which hides an import (as ('<hidden>', line, True))."""
    files = [name for name in os.listdir(HERE) if name.endswith(".py") and not name.startswith("test_")]
    files += [os.path.join(f, name) for f in FOLDERS for name in os.listdir(os.path.join(HERE, f))]
    found = {}
    for path in [f for f in files if f.endswith(".py")]:
        module = path[:-3].replace(os.sep, ".").removesuffix(".__init__")
        tree = ast.parse(open(os.path.join(HERE, path)).read())
        top = {id(node) for node in tree.body}
        top |= {id(n) for node in tree.body if isinstance(node, ast.Try) for n in node.body}  # start-up guard
        found[module] = []
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            if isinstance(node, ast.Name) and node.id in ("__import__", "importlib"):
                names = ["<hidden>"]
            for name in names:
                found[module].append((name, node.lineno, id(node) in top))
    return found


def floor(module):
    """The floor of a project module, or None for what is not the project's (the standard library, torch)."""
    return FLOORS.get(module.split(".")[0])


def import_problem(module, name, at_module_level):
    """Why `module` may not import `name`, or None when it may."""
    first = name.split(".")[0]
    here, there = floor(module), floor(name)
    if name == "<hidden>":
        return "hides an import in __import__ or importlib: write a plain one"
    if there is None:
        return None
    if here is None:
        return "is on no floor: give it one in FLOORS, or move it into one of FOLDERS"
    if module in SCRIPT_NAMES:
        if first in ("data", "backbones", "metrics"):
            return None
        return f"imports {name}: an experiment script imports only data, backbones and metrics"
    if there < here or here == TOP or (first in FOLDERS and first == module.split(".")[0]):
        return None
    if (module.split(".")[0], first) not in LAZY:
        return f"imports {name}, on floor {there}, from floor {here}"
    if at_module_level:
        return f"imports {name} at module level: only inside a function or the __main__ block"
    return None


def test_imports_run_one_way_bottom_up():
    """No module imports one on its floor or above (but the LAZY ones, never at module level), an experiment
    script imports only data, backbones and metrics, nothing hides an import, and the folders around the
    training path import each other in no circle."""
    found = project_imports()
    assert {"data", "metrics", "retrieve", "tt_agg", "study.summary", "dataset_sources.toy"} <= set(found)
    assert "safe_files.ownership" in found and "dataset_sources.contract" in found and not LAZY
    wrong = []
    for module, imports in found.items():
        for name, line, at_module_level in imports:
            problem = import_problem(module, name, at_module_level)
            if problem:
                wrong.append(f"{module.replace('.', '/')}.py:{line} {problem}")
    assert not wrong, "\n".join(wrong)
    folders = {
        m: {n for n, _, _ in found[m] if n in found and n != m} for m in found if "." in m or m in FOLDERS
    }
    for module in folders:  # every module reachable from this one: never itself
        seen, todo = set(), list(folders[module])
        while todo:
            other = todo.pop()
            assert other != module, f"{module} imports itself through {sorted(seen)}"
            if other not in seen and other in folders:
                seen.add(other)
                todo += folders[other]
