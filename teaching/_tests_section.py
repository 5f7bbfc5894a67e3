# ----------------------------------------------------------------------------------------------------------
# teaching/: the exercises' patches, the student copy's blanks (one test per blank: pytest -k NAME), the notebook
# ----------------------------------------------------------------------------------------------------------

TEACHING = os.path.join(HERE, "teaching")


class Flatten(torch.nn.Module):
    """A stand-in tower: (B, D, 1, 1) -> (B, D), so that a test chooses the embeddings exactly."""

    def forward(self, x):
        return x.flatten(1)


def test_exercise_tt_agg_forward():
    """The two-tower score is the cosine of the two embeddings, mapped from [-1, 1] to [0, 1]."""
    import tt_agg
    model = tt_agg.TwoTower("resnet")
    model.image_tower, model.sound_tower = Flatten(), Flatten()
    image = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [2.0, 2.0]])[:, :, None, None]
    sound = torch.tensor([[5.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [6.0, 8.0], [0.0, 1.0]])[:, :, None, None]
    p = model(image, sound)
    assert p.shape == (5,)  # one probability per pair
    # same direction (whatever the lengths) 1, opposite 0, orthogonal 0.5, cosine 1/sqrt(2) -> 0.854
    assert p.tolist() == pytest.approx([1.0, 0.0, 0.5, 1.0, (1 + 2 ** -0.5) / 2], abs=1e-6)
    full = tt_agg.TwoTower("resnet").eval()  # with the real towers: a probability, unchanged by the batch
    torch.manual_seed(0)
    image, sound = torch.randn(4, 3, 32, 32), torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        q = full(image, sound)
        assert ((q >= 0) & (q <= 1)).all() and q[:2] == pytest.approx(full(image[:2], sound[:2]), abs=1e-5)


def test_exercise_negative_sampling(tiny):
    """Every clip once with its own frame (label 1), then the same frames, in the same order, each with one
    clip of the same split whose material the frame does not show (label 0); seeded by the generator."""
    import types
    import tt_agg
    raw = torch.load(tiny, weights_only=True)  # the dataset's labels alone: no spectrogram needed
    ds = types.SimpleNamespace(**{k: raw[k] for k in ["clip_materials", "image_labels", "video_ids"]})
    videos = torch.nonzero(raw["split"] == data.SPLITS["train"]).flatten()
    frame_video, sound_video, sound_clip, label = tt_agg.make_examples(ds, videos, torch.Generator().manual_seed(0))
    m = 10 * len(videos)
    assert len(label) == len(frame_video) == len(sound_video) == len(sound_clip) == 2 * m
    assert label[:m].eq(1).all() and label[m:].eq(0).all(), "positives first, then their negatives"
    assert (frame_video[:m] == frame_video[m:]).all(), "each negative uses its positive's frame"
    positives = set(zip(sound_video[:m].tolist(), sound_clip[:m].tolist()))
    assert positives == {(v, c) for v in videos.tolist() for c in range(10)}, "every clip of the split once"
    assert (sound_video[:m] == frame_video[:m]).all(), "a positive is the frame's own clip"
    material = ds.clip_materials[sound_video[m:], sound_clip[m:]]
    assert not ds.image_labels[frame_video[m:], material].any(), "a negative's material is absent from the frame"
    assert set(sound_video[m:].tolist()) <= set(videos.tolist()), "negatives come from the same split"
    again = tt_agg.make_examples(ds, videos, torch.Generator().manual_seed(0))
    other = tt_agg.make_examples(ds, videos, torch.Generator().manual_seed(1))
    assert all((a == b).all() for a, b in zip(again, (frame_video, sound_video, sound_clip, label)))
    assert not (other[1] == sound_video).all(), "another seed draws other negatives"


def test_exercise_pos_weight():
    """negatives / positives per material, so both weigh alike in the loss; 1 for a material never seen."""
    import visual_only
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=torch.bool)  # 4 frames, 3 materials
    weight = visual_only.positive_weights(labels)
    assert weight.shape == (3,) and weight.dtype.is_floating_point
    assert weight.tolist() == pytest.approx([1 / 3, 3.0, 1.0])
    assert torch.isfinite(visual_only.positive_weights(torch.zeros(5, 17, dtype=torch.bool))).all()


def test_exercise_precision_at_k():
    """Precision@K for K = 1..k, worked by hand; ties count against the model."""
    similarity = torch.tensor([[0.9, 0.1, 0.8, 0.3], [0.2, 0.4, 0.6, 0.8]])
    relevant = torch.tensor([[1, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    p = retrieve.precision_at_k(similarity, relevant, 4)
    # query 0 ranks items 0 (relevant), 2, 3 (relevant), 1; query 1: everything is relevant
    assert p.flatten().tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5, 1.0, 1.0, 1.0, 1.0])
    assert retrieve.precision_at_k(similarity, relevant, 2).shape == (2, 2)
    tied = retrieve.precision_at_k(torch.zeros(1, 4), torch.tensor([[1, 0, 0, 0]], dtype=torch.bool), 4)
    assert tied.flatten().tolist() == pytest.approx([0.0, 0.0, 0.0, 0.25]), "a constant similarity ranks relevant items last"


def test_exercise_average_precision():
    """The mean of precision@rank over the relevant items' ranks, worked by hand; NaN with nothing relevant."""
    similarity = torch.tensor([[0.9, 0.1, 0.8, 0.3], [0.9, 0.1, 0.8, 0.3], [0.9, 0.1, 0.8, 0.3]])
    relevant = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    ap = retrieve.average_precision(similarity, relevant)
    assert ap.shape == (3,)
    assert ap[:2].tolist() == pytest.approx([(1 + 2 / 3) / 2, 1 / 4]) and torch.isnan(ap[2])
    assert retrieve.average_precision(torch.zeros(1, 4), torch.tensor([[1, 0, 0, 0]], dtype=torch.bool)).item() == \
        pytest.approx(0.25), "ties count against the model"


def test_exercise_spectrogram():
    """A square, per-clip normalised log-mel image: shape, gain invariance, and pitch shown as height."""
    rate = data.SAMPLE_RATE
    t = torch.arange(rate) / rate
    low, high = torch.sin(2 * torch.pi * 300 * t), torch.sin(2 * torch.pi * 5000 * t)
    clips = (torch.stack([low, high, 0.5 * low]) * 20000).to(torch.int16)  # (3, N)
    s = data.spectrogram(clips[None], rate, 32)
    assert s.shape == (1, 3, 1, 32, 32) and s.dtype == torch.float32 and torch.isfinite(s).all()
    assert s.mean(dim=(-1, -2)).abs().max() < 0.05 and ((s.std(dim=(-1, -2)) - 0.85).abs() < 0.3).all(), \
        "each clip standardised (before the smoothing resize, so its spread comes out a little under 1)"
    noisy = torch.randn(rate, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.3 * low  # energy in every band
    quiet = data.spectrogram(torch.stack([noisy, 0.2 * noisy]), rate, 32)
    assert torch.allclose(quiet[0], quiet[1], atol=1e-4), "the recording gain does not change the image"
    energy = s[0, :2, 0].mean(-1)  # (2, 32): mean over time of each row (frequency)
    assert energy[0].argmax() < energy[1].argmax(), "a higher tone lights a higher row"
    assert data.spectrogram(clips.float() / 32768, rate, 48).shape == (3, 1, 48, 48), "float clips, another size"


def test_the_kit_patches_apply_to_the_code(tmp_path):
    """Every reference solution still applies, so the kit cannot rot silently; the measuring tool lists them all."""
    if not os.path.isdir(os.path.join(TEACHING, "patches")):
        pytest.skip("a student's copy: the reference solutions are the teacher's")
    import teaching.measure as measure
    patches = sorted(os.listdir(os.path.join(TEACHING, "patches")))
    assert [p[:-len(".patch")] for p in patches] == list(measure.EXERCISES) and len(patches) >= 8
    measure.copy_project(tmp_path / "copy")
    for patch in patches:
        r = subprocess.run(["git", "apply", "--check", os.path.join(TEACHING, "patches", patch)],
                           cwd=tmp_path / "copy", capture_output=True, text=True)
        assert r.returncode == 0, (patch, r.stderr)


def test_the_student_copy_blanks_functions_and_its_scripts_run(tmp_path, tiny):
    """The copy keeps every signature and docstring, leaves out the teacher's material, and its blanked code
    stops with the exercise's message while the untouched scripts train."""
    import ast
    from teaching import make_student_copy as msc
    out = tmp_path / "student"
    r = run("teaching/make_student_copy.py", out)
    assert r.returncode == 0, r.stderr
    assert not (out / "teaching" / "patches").exists() and not (out / "teaching" / "KEY.md").exists()
    for name, (file, qualified, _) in msc.BLANKS.items():
        original = msc.find(ast.parse(open(os.path.join(HERE, file)).read()), qualified)
        blanked = msc.find(ast.parse((out / file).read_text()), qualified)
        assert ast.dump(original.args) == ast.dump(blanked.args)
        assert ast.get_docstring(original) == ast.get_docstring(blanked)
        assert isinstance(blanked.body[-1], ast.Raise) and name in ast.unparse(blanked.body[-1])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}

    def train(copy, *flags):
        return subprocess.run([sys.executable, "visual_only.py", *flags, "--epochs", "1", "--data", tiny, "--out",
                               tmp_path / "r"], cwd=copy, env=env, capture_output=True, text=True)
    stopped = train(out)  # every script loads spectrograms, blanked here
    assert stopped.returncode != 0 and "exercise spectrogram" in stopped.stderr, stopped.stderr
    partial = tmp_path / "partial"
    assert run("teaching/make_student_copy.py", partial, "--only", "pos_weight", "precision_at_k").returncode == 0
    ok = train(partial)  # untouched by these blanks: the unweighted network does not call positive_weights
    assert ok.returncode == 0 and "Table 3" in ok.stdout, ok.stderr
    blank = train(partial, "--weighted")
    assert blank.returncode != 0 and "exercise pos_weight" in blank.stderr and "-k pos_weight" in blank.stderr
    assert run("teaching/make_student_copy.py", out).returncode == 2, "an existing folder is refused"


def test_the_notebook_runs_the_main_job_and_the_retrieval(tmp_path):
    """teaching/matsound.ipynb, executed top to bottom on the CPU with a tiny toy and one epoch (its parameter
    cell rewritten), so that it cannot drift from the scripts. nbclient is a test-only dependency."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(os.path.join(TEACHING, "matsound.ipynb"), as_version=4)
    [parameters] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = f'REPO_URL = ""\nVIDEOS = 24\nEPOCHS = 1\nK = 5\nDEVICE = "cpu"\nRUNS = {str(tmp_path)!r}'
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": TEACHING}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Table 5 (TT_AGG)" in outputs and "precision@" in outputs.lower(), outputs[-2000:]
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3, "the curves, the precision@K curve and the top-5 sheet"
