"""The test suite: `pytest test_all.py` (about N minutes on 2 CPU cores; no GPU needed).

Two kinds of test, as in STYLE.md:
- numeric code (the toy generator, spectrograms, the image transform, metrics) checked against an independent
  reference (scikit-learn) or a hand-computed case;
- every script run the way a user runs it, through its command line, on a tiny toy dataset, checking what it
  printed and what it wrote.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import backbones
import data
import metrics

HERE = os.path.dirname(os.path.abspath(__file__))


def run(*argv, cwd=HERE):
    """Run a command of this project as a user would (`python script.py ...`); returns the finished process."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny toy dataset file: 24 videos (14 train / 4 val / 6 test) of 32x32 frames."""
    path = tmp_path_factory.mktemp("data") / "tiny.pt"
    data.atomic_save(data.make_toy(videos=24, size=32, seed=1), str(path))
    return str(path)


# ----------------------------------------------------------------------------------------------------------
# data.py: the dataset contract, the toy generator, spectrograms, the image transform
# ----------------------------------------------------------------------------------------------------------

def test_material_ids_are_the_papers_table_1():
    assert data.MATERIALS[0] == "plastic" and data.MATERIALS[13] == "dirt" and data.MATERIALS[16] == "carpet"
    assert data.MATERIAL_ID["plastic-bag"] == 12 and data.MATERIAL_ID["wood"] == 15
    assert len(set(data.MATERIALS)) == data.NUM_MATERIALS == 17


def test_toy_follows_the_dataset_contract(tiny):
    d = torch.load(tiny, weights_only=True)
    data.check_dataset(d)
    V = 24
    assert d["frames"].shape == (V, 3, 32, 32) and d["frames"].dtype == torch.uint8
    assert d["image_labels"].shape == (V, 17) and d["image_labels"].dtype == torch.bool
    assert d["clips"].shape == (V, 10, data.SAMPLE_RATE) and d["clips"].dtype == torch.int16
    assert d["clip_materials"].shape == (V, 10) and d["clip_materials"].dtype == torch.int64
    assert d["split"].dtype == torch.int8 and len(d["video_ids"]) == len(set(d["video_ids"])) == V
    assert d["source"] == "toy" and d["materials"] == data.MATERIALS and d["sample_rate"] == data.SAMPLE_RATE


def test_split_sizes_follow_the_paper():
    assert data.split_sizes(977) == (586, 147, 244)
    for videos in [10, 24, 160, 500]:
        train, val, test = data.split_sizes(videos)
        assert train + val + test == videos and min(train, val, test) >= 1


def test_toy_splits_labels_and_clips_agree(tiny):
    d = torch.load(tiny, weights_only=True)
    assert [int((d["split"] == s).sum()) for s in range(3)] == list(data.split_sizes(24))
    labels, mats = d["image_labels"], d["clip_materials"]
    per_frame = labels.sum(1)
    assert per_frame.min() >= 1 and per_frame.max() <= 3
    for v in range(len(labels)):
        heard = set(mats[v].tolist())
        shown = set(torch.nonzero(labels[v]).flatten().tolist())
        assert heard == shown, "every clip's material is in the frame, and every material in view is hit"


def test_toy_is_deterministic_and_each_video_independent_of_the_count():
    a, b = data.make_toy(videos=10, size=32, seed=3), data.make_toy(videos=10, size=32, seed=3)
    for key in ["frames", "image_labels", "clips", "clip_materials", "split"]:
        assert torch.equal(a[key], b[key]), key
    c = data.make_toy(videos=12, size=32, seed=3)  # video v comes from its own random stream
    assert torch.equal(a["clips"], c["clips"][:10]) and torch.equal(a["frames"], c["frames"][:10])
    other = data.make_toy(videos=10, size=32, seed=4)
    assert not torch.equal(a["clips"], other["clips"])


def test_toy_scenes_and_class_frequencies_look_like_the_papers():
    """Paper 3.1 and Figure 2: 64% outdoor, about 1.7 materials per frame, wood and metal common, dirt rare."""
    d = data.make_toy(videos=120, size=32, seed=0)
    assert 0.5 < d["outdoor"].float().mean() < 0.78
    assert 1.5 < d["image_labels"].sum(1).float().mean() < 1.95
    share = torch.bincount(d["clip_materials"].flatten(), minlength=17).float() / d["clip_materials"].numel()
    top = share.argsort(descending=True)[:4].tolist()
    assert data.MATERIAL_ID["wood"] in top and data.MATERIAL_ID["metal"] in top
    assert share[data.MATERIAL_ID["dirt"]] < 0.03


def test_toy_clips_are_centred_on_their_hits(tiny):
    """Each clip is one second with the hit at its centre: almost nothing before it, the onset right at it."""
    clips = torch.load(tiny, weights_only=True)["clips"].float()
    n = clips.shape[-1]
    before = clips[..., : n // 2 - int(0.2 * data.SAMPLE_RATE)].abs().mean(-1)
    onset = clips[..., n // 2: n // 2 + int(0.02 * data.SAMPLE_RATE)].abs().mean(-1)
    assert (onset > before).float().mean() > 0.9  # a neighbouring hit may come before the centre, rarely


def test_data_cli_builds_a_toy_file_and_prints_what_it_built(tmp_path):
    out = tmp_path / "toy.pt"
    r = run("data.py", "toy", "--videos", "12", "--size", "32", "--seed", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "train 7, val 2, test 3" in r.stdout and "hits per material" in r.stdout and "wood" in r.stdout
    d = data.read_dataset(str(out))
    assert len(d["video_ids"]) == 12 and d["seed"] == 5
    r = run("data.py", "toy", "--size", "16", "--out", str(tmp_path / "bad.pt"))
    assert r.returncode == 2 and "at least 32 pixels" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad.pt").exists()


def test_read_dataset_says_what_is_wrong(tmp_path):
    with pytest.raises(data.DataError, match="no dataset file"):
        data.read_dataset(str(tmp_path / "missing.pt"))
    with pytest.raises(data.DataError, match="is a folder"):
        data.read_dataset(str(tmp_path))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(data.DataError, match="not a readable dataset"):
        data.read_dataset(str(junk))
    old = data.make_toy(videos=10, size=32, seed=0)
    old["format_version"] = 0
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(data.DataError, match="format version 0.*rebuild"):
        data.read_dataset(str(tmp_path / "old.pt"))
    del old["clips"]
    old["format_version"] = data.FORMAT_VERSION
    torch.save(old, tmp_path / "partial.pt")
    with pytest.raises(data.DataError, match="lacks clips"):
        data.read_dataset(str(tmp_path / "partial.pt"))


def test_atomic_save_leaves_the_old_file_intact_when_a_write_fails(tmp_path):
    path = str(tmp_path / "d.pt")
    data.atomic_save({"a": torch.ones(3)}, path)
    with pytest.raises(Exception):
        data.atomic_save({"a": lambda: 0}, path)  # a lambda cannot be pickled: the write fails halfway
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert os.listdir(tmp_path) == ["d.pt"], "no temporary file is left behind"


def tone(freq, seconds=1.0, rate=data.SAMPLE_RATE):
    t = torch.arange(int(seconds * rate)) / rate
    return torch.sin(2 * math.pi * freq * t)


def test_spectrogram_is_a_square_normalised_log_mel_image():
    clips = (torch.randn(2, 3, data.SAMPLE_RATE) * 3000).to(torch.int16)
    s = data.spectrogram(clips, data.SAMPLE_RATE, 32)
    assert s.shape == (2, 3, 1, 32, 32) and s.dtype == torch.float32
    assert s.mean(dim=(-1, -2)).abs().max() < 0.1 and (s.std(dim=(-1, -2)) - 1).abs().max() < 0.2
    # The recording gain is normalised away: a clip and the same clip 4x louder give the same image.
    x = tone(440) * 0.1 + torch.randn(data.SAMPLE_RATE, generator=torch.Generator().manual_seed(0)) * 0.01
    assert torch.allclose(data.spectrogram(x, data.SAMPLE_RATE, 32), data.spectrogram(4 * x, data.SAMPLE_RATE, 32),
                          atol=1e-3)


def test_spectrogram_rows_are_frequency_and_columns_are_time():
    rate, size = data.SAMPLE_RATE, 32
    low, high = data.spectrogram(torch.stack([tone(300), tone(6000)]), rate, size)[:, 0]  # (size, size) each
    row = lambda s: s.mean(1).argmax().item()  # the mel row with the most energy
    assert row(high) > row(low) + size // 4
    click = torch.zeros(rate)
    click[rate // 2] = 1.0  # a click half a second in: the brightest column is the middle one
    column = data.spectrogram(click, rate, size)[0].mean(0).argmax().item()
    assert abs(column - size // 2) <= 2


def test_image_transform_scales_resizes_and_flips_in_training_only():
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
    assert torch.equal(y, data.image_transform(frames, 32, train=True))  # the seed repeats the flips


def test_load_puts_spectrograms_on_the_device_and_indexes_splits(tiny):
    ds = data.load(tiny, torch.device("cpu"))
    assert ds.spectrograms.shape == (24, 10, 1, 32, 32) and ds.frames.dtype == torch.uint8
    parts = [ds.videos(s) for s in ["train", "val", "test"]]
    assert sorted(torch.cat(parts).tolist()) == list(range(24))
    assert "24 videos (14 train / 4 val / 6 test)" in ds.describe()


def test_pick_device():
    assert data.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert data.pick_device("auto").type == "cpu"
        with pytest.raises(data.DataError, match="no CUDA GPU"):
            data.pick_device("cuda")


# ----------------------------------------------------------------------------------------------------------
# backbones.py
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["resnet", "vgg"])
def test_towers_map_frames_and_spectrograms_to_embeddings_or_logits(backbone):
    torch.manual_seed(0)
    sizes = [(3, 128, 32), (1, 128, 32), (3, 17, 64)] + ([(1, 17, 224)] if backbone == "resnet" else [])
    for channels, out, size in sizes:
        net = backbones.tower(backbone, channels, out).eval()
        with torch.no_grad():
            y = net(torch.randn(2, channels, size, size))
        assert y.shape == (2, out) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.tower("alexnet", 3, 17)


def test_towers_are_fresh_random_networks():
    torch.manual_seed(0)
    a = backbones.tower("resnet", 3, 128)
    b = backbones.tower("resnet", 3, 128)
    assert not torch.equal(a.fc.weight, b.fc.weight)
    assert 11e6 < backbones.count_parameters(a) < 12e6  # ResNet-18's 11.2M (with a 128-d head)


# ----------------------------------------------------------------------------------------------------------
# metrics.py, against scikit-learn or hand-computed cases
# ----------------------------------------------------------------------------------------------------------

def test_accuracy_and_confusion_matrix_match_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 17, (500,), generator=g)
    pred = torch.where(torch.rand(500, generator=g) < 0.6, target, torch.randint(0, 17, (500,), generator=g))
    assert metrics.accuracy(pred, target) == pytest.approx(accuracy_score(target, pred))
    ours = metrics.confusion_matrix(pred, target, 17)
    assert np.array_equal(ours.numpy(), confusion_matrix(target, pred, labels=list(range(17))))


@pytest.mark.parametrize("density", [0.1, 0.5, 0.0])
def test_binary_scores_match_scikit_learn_over_all_entries(density):
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    g = torch.Generator().manual_seed(1)
    target = torch.rand(60, 17, generator=g) < 0.1
    pred = torch.rand(60, 17, generator=g) < density
    ours = metrics.binary_scores(pred, target)
    p, r, f, _ = precision_recall_fscore_support(target.numpy(), pred.numpy(), average="micro", zero_division=0)
    assert ours["precision"] == pytest.approx(p) and ours["recall"] == pytest.approx(r)
    assert ours["f1"] == pytest.approx(f)
    # The paper's multilabel accuracy counts every label entry (3.3.2), not whole rows (sklearn's subset accuracy).
    assert ours["accuracy"] == pytest.approx(accuracy_score(target.flatten().numpy(), pred.flatten().numpy()))


def test_coappearance_precision_at_k_and_baselines_by_hand():
    labels = torch.tensor([[1, 1, 0], [1, 0, 1], [1, 1, 0]], dtype=torch.bool)
    assert metrics.coappearance(labels).tolist() == [[3, 2, 1], [2, 2, 0], [1, 0, 1]]
    good = torch.tensor([[True, False, True, True], [False, False, False, True]])
    assert torch.allclose(metrics.precision_at_k(good), torch.tensor([[1, 1 / 2, 2 / 3, 3 / 4], [0, 0, 0, 1 / 4]]))
    majority = metrics.majority_baseline(torch.tensor([3, 3, 5]), torch.tensor([3, 5, 5, 3]))
    assert majority["accuracy"] == 0.5 and "3" in majority["name"]
    negative = metrics.all_negative_baseline(torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool))
    assert negative["accuracy"] == 7 / 8 and negative["recall"] == 0 and negative["f1"] == 0
    chance = metrics.chance_baseline(torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert chance["accuracy"] == 0.5 and chance["precision"] == 0.5 and chance["f1"] == 0.5


def test_format_row_shows_our_numbers_the_papers_and_the_baseline():
    names = ["accuracy", "precision", "recall", "f1"]
    paper = metrics.PAPER[("tt_agg", "resnet", False)]
    ours = {"accuracy": 0.75, "precision": 0.5, "recall": 1.0, "f1": 2 / 3}
    baseline = {"val": metrics.chance_baseline(torch.tensor([1.0, 0.0])),
                "test": metrics.chance_baseline(torch.tensor([1.0, 0.0]))}
    lines = metrics.format_row("Table 5", ours, ours, paper, baseline, names)
    text = "\n".join(lines)
    assert lines[0] == "Table 5" and "validation" in lines[1] and "test" in lines[1]
    assert "this run" in text and "0.6667" in text and "0.8040" in text and "0.7428" in text
    assert "baseline: chance (coin flip)" in text
    assert len({len(line) for line in lines[1:]}) == 1, "the columns line up"


def test_write_json_is_atomic(tmp_path):
    path = str(tmp_path / "metrics.json")
    metrics.write_json({"a": 1}, path)
    with pytest.raises(TypeError):
        metrics.write_json({"a": object()}, path)
    assert json.load(open(path)) == {"a": 1} and os.listdir(tmp_path) == ["metrics.json"]
