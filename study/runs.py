"""The run folders of a study, read back: what the scripts saved, checked before anything is drawn from it.

A run is a folder named by data.run_name, <script>-<backbone>[-weighted]-seed<k>/, holding the metrics.json
its script wrote (retrieve.py's: retrieve-<backbone>[-sound-to-image]-seed<k>/, k the seed its towers were
trained with). Runs of several seeds sit side by side; the summary shows each number as mean ± std over the
seeds it finds. The run folder is the contract between training and everything after it: the summary reads
nothing else, but for Figures 2 and 6, which count examples rather than results, the dataset file the runs
were trained on.
"""

import glob
import json
import os

import backbones
import data
from metrics import DIRECTIONS, PAPER, source_name

PAPER_EPOCHS = 30  # paper 3.3: every model trained for 30 epochs
TABLE_METRICS = {
    2: ["accuracy"],
    3: ["accuracy", "precision", "recall", "f1"],
    4: ["accuracy"],
    5: ["accuracy", "precision", "recall", "f1"],
}
# The study's training runs for one seed, (script, backbone, weighted) in the order study/run.py runs them:
# each backbone's rows of the paper's Tables 2-5, the keys of metrics.PAPER. Read by study/run.py and the
# benchmarks.
RUNS = [key for backbone in backbones.BACKBONES for key in PAPER if key[1] == backbone]
SCRIPTS = list(dict.fromkeys(script for script, _, _ in RUNS))  # the four experiment scripts, in order
RETRIEVE_COMMAND = "python retrieve.py --k 50"  # its run folder is runs/retrieve-<backbone>-seed<k>/
STUDY_COMMAND = "python study/run.py --seeds 0 1 2"  # the whole study, every seed


def run_command(script, backbone, weighted=False, seed=0):
    """The command that makes a run of the study, with the paper's defaults."""
    if script == "retrieve":
        if (backbone, seed) == ("resnet", 0):
            return RETRIEVE_COMMAND  # its defaults
        towers = data.run_name("tt_agg", backbone, seed=seed)
        return f"{RETRIEVE_COMMAND} --run runs/{towers} --seed {seed}"
    command = f"python {script}.py --backbone {backbone}"
    if weighted:
        command += " --weighted"
    if seed:
        command += f" --seed {seed}"
    return command


def backbone_name(backbone):
    """'resnet' -> 'ResNet-18', as the scripts print it."""
    return backbones.BACKBONES.get(backbone, backbone)


def study_backbones():
    """The backbones of the study, in the paper's order: ResNet, then VGG."""
    return list(backbones.BACKBONES)


def run_key(m):
    """(script, backbone, weighted): the key of a run in PAPER and in the summary's dict of runs, and
    data.run_name's arguments. A retrieval from sound to image is 'retrieve-sound-to-image' (Figure 8 is image
    to sound, 'retrieve')."""
    script = m["script"]
    direction = m.get("direction", "image-to-sound")
    if direction != "image-to-sound":
        script = f"{script}-{direction}"
    return script, m["backbone"], bool(m.get("weighted", False))


def is_number(x):
    """Whether `x` is a JSON number: an int or a float, not a boolean (True is an int to Python)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_numbers(x):
    """Whether `x` is a non-empty JSON list of numbers."""
    return isinstance(x, list) and len(x) > 0 and all(is_number(v) for v in x)


def check_retrieval(m):
    """None when a retrieve.py metrics.json holds what the summary reads, else which field is wrong."""
    if not is_numbers(m.get("single")) or not is_numbers(m.get("mean")):
        return "'single' and 'mean' are not lists of numbers (the precision@K curves)"
    query = m.get("query")
    if not isinstance(query, dict) or not isinstance(query.get("video_id"), str):
        return "'query' lacks its video_id"
    if not isinstance(query.get("labels"), list) or not all(isinstance(x, str) for x in query["labels"]):
        return "'query' lacks its labels"
    table = m.get("table")
    if not isinstance(table, dict):
        return "'table' is not a table of rows"
    for name, row in table.items():
        if not isinstance(row, dict) or not all(is_number(row.get(k)) for k in ("all", "random")):
            return f"'table' row {name} lacks the numbers 'all' and 'random'"
        if not (is_number(row.get("single")) or isinstance(row.get("single"), bool)):
            return f"'table' row {name} lacks 'single'"
        if row.get("std") is not None and not is_number(row["std"]):
            return f"'table' row {name}'s 'std' is not a number"
    return None


def check_training_run(m, names):
    """None when a training script's metrics.json holds what the summary reads (the table's metric `names`),
    else which field is wrong."""
    baseline = m.get("baseline")
    if not isinstance(baseline, dict):
        return "'baseline' is not a dict"
    for where, d in [
        ("val", m.get("val")),
        ("test", m.get("test")),
        ("baseline val", baseline.get("val")),
        ("baseline test", baseline.get("test")),
    ]:
        if not isinstance(d, dict) or not all(is_number(d.get(n)) for n in names):
            return f"'{where}' lacks the numbers {', '.join(names)}"
    if not isinstance(baseline["test"].get("name"), str):
        return "the baseline has no name"
    curves = m.get("curves")
    if not isinstance(curves, list) or not curves:
        return "'curves' is not a list of epochs"
    for c in curves:
        if not isinstance(c, dict) or not isinstance(c.get("epoch"), int):
            return "'curves' holds an entry without its epoch"
        if not all(is_number(c.get(f"val_{n}")) for n in names):
            return f"'curves' epoch {c['epoch']} lacks the numbers val_{', val_'.join(names)}"
    if m["script"] in ("sound_only", "fc_agg"):
        rows = m.get("test_confusion")
        if not (isinstance(rows, list) and rows and all(is_numbers(r) and len(r) == len(rows) for r in rows)):
            return "'test_confusion' is not a square matrix"
    return None


def check_run(m):
    """None when `m` (a parsed metrics.json, perhaps edited by hand or from elsewhere) holds what the summary
    reads, else the field that is wrong. Checked up front, so that the tables and figures can read a run
    without guarding every key, and a broken file is named and left out rather than ending in a traceback."""
    if (
        not isinstance(m, dict)
        or not isinstance(m.get("script"), str)
        or not isinstance(m.get("backbone"), str)
    ):
        return "not a run's metrics (no script and backbone)"
    if "args" in m and not isinstance(m["args"], dict):
        return "'args' is not a dict of the run's flags"
    if m["script"] == "retrieve":
        if m.get("direction", "image-to-sound") not in DIRECTIONS:
            return f"'direction' is {m.get('direction')!r}"
        return check_retrieval(m)
    if run_key(m) not in PAPER:
        return f"{data.run_name(*run_key(m))} is not one of the paper's runs (Tables 2-5)"
    return check_training_run(m, TABLE_METRICS[PAPER[run_key(m)]["table"]])


def run_seed(m):
    """The seed of a run: the training seed, or for retrieve.py the seed its towers were trained with."""
    if m["script"] == "retrieve":
        seed = m.get("trained_seed")
    else:
        seed = (m.get("args") or {}).get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    return 0  # an older run that did not record it


def read_runs(folder):
    """Every readable run in `folder`: ({(script, backbone, weighted): {seed: metrics}}, [notes on what was
    skipped]).

    A run is a subfolder with a metrics.json. One that cannot be read, or lacks what the summary needs, is
    named and left out: one broken run should not hide the others. When two folders hold the same run and
    seed (a copy, a renamed folder), the one with the scripts' folder name is used and the other named.
    """
    runs = {}
    notes = []
    for path in sorted(glob.glob(os.path.join(folder, "*", "metrics.json"))):
        try:
            with open(path) as f:
                m = json.load(f)
        except (OSError, ValueError) as e:
            notes.append(f"skipped {path}: not readable JSON ({e})")
            continue
        problem = check_run(m)
        if problem:
            notes.append(f"skipped {path}: {problem}")
            continue
        m["folder"] = os.path.dirname(path)
        key = run_key(m)
        seed = run_seed(m)
        seeds = runs.setdefault(key, {})
        if seed in seeds:
            name = data.run_name(*key, seed)
            keep, drop = sorted([seeds[seed], m], key=lambda r: os.path.basename(r["folder"]) != name)
            notes.append(f"{drop['folder']} holds the same run as {keep['folder']}: using {keep['folder']}")
            m = keep
        seeds[seed] = m
    runs, strangers = leave_out_strangers(runs)
    return runs, notes + strangers


def settings(m):
    """(dataset fingerprint, epochs) a run was trained with; None where the run does not record it."""
    fingerprint = m.get("data_fingerprint")
    if m["script"] == "retrieve":
        epochs = m.get("trained_epochs")
    else:
        epochs = m.get("args", {}).get("epochs")
    return fingerprint, epochs


def leave_out_strangers(runs):
    """The runs trained like most of them (the same dataset, by its fingerprint, and the same number of
    epochs), and a note for each run left out. Averaging a run on a rebuilt dataset, or of 2 epochs, with
    runs of 30 makes a number that belongs to no experiment: such runs are summarised in a folder of their
    own. A run that does not record a setting is not judged on it."""
    found = [(key, seed, m) for key, seeds in runs.items() for seed, m in seeds.items()]
    notes = []
    for index, what in [(0, "dataset (fingerprint)"), (1, "number of epochs")]:
        counts = {}
        for _, _, m in found:
            value = settings(m)[index]
            if value is not None:
                counts[value] = counts.get(value, 0) + 1
        if len(counts) < 2:
            continue
        usual = max(counts, key=counts.get)
        kept = []
        for key, seed, m in found:
            value = settings(m)[index]
            if value is None or value == usual:
                kept.append((key, seed, m))
            else:
                notes.append(
                    f"left out {m['folder']}: another {what} ({value}) than the other {counts[usual]} runs' "
                    f"({usual}); summarise it in a folder of its own"
                )
        found = kept
    kept_runs = {}
    for key, seed, m in found:
        kept_runs.setdefault(key, {})[seed] = m
    return kept_runs, notes


def all_runs(runs):
    """Every run's metrics, whatever its key and seed."""
    return [m for seeds in runs.values() for m in seeds.values()]


def study_source(runs):
    """The runs' data as titles say it ('toy data', 'Greatest Hits data'), and a note when they mix
    sources."""
    sources = sorted({m.get("source", "unknown") for m in all_runs(runs)})
    if len(sources) == 1:
        return source_name(sources[0]), []
    return "mixed data", [
        f"the runs were trained on different sources ({', '.join(sources)}): the tables and figures mix them"
    ]


def find_dataset(runs, runs_folder):
    """The dataset dict the runs were trained on, for Figures 2 and 6: (dataset or None, notes).

    Taken from the runs' args["data"] (None: the default toy dataset, built as the scripts would if it is
    gone). A relative path is tried from here, then from the folder above the runs (where the scripts ran).
    When the runs disagree, the dataset most runs used is shown and the disagreement said.
    """
    used = {}  # dataset path (None: the default toy) -> the training runs that used it
    for key, seeds in sorted(runs.items()):
        if key not in PAPER:  # a retrieval: it names the towers' dataset, counted with them
            continue
        for m in seeds.values():
            args = m.get("args")
            if not isinstance(args, dict):
                args = {}
            used.setdefault(args.get("data"), []).append(os.path.basename(m["folder"]))
    if not used:
        return None, ["Figures 2 and 6 need the dataset, named by a training run: there is none yet"]
    path = max(used, key=lambda p: len(used[p]))
    notes = []
    if len(used) > 1:
        notes.append(
            "the runs used different datasets: "
            + "; ".join(f"{p or 'the default toy dataset'} ({', '.join(names)})" for p, names in used.items())
            + f". Figures 2 and 6 show {path or 'the default toy dataset'}"
        )
    candidates = [path]
    if path is None:
        candidates = [data.toy_path(**data.TOY_DEFAULTS)]
    if not os.path.isabs(candidates[0]):
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(runs_folder)), candidates[0]))
    found = next((p for p in candidates if os.path.exists(p)), candidates[0])
    try:
        if path is None and not os.path.exists(found):
            found = data.default_toy()  # built as the scripts would (deterministic: the same one)
        return data.read_dataset(found), notes
    except data.DataError as e:
        return None, notes + [f"Figures 2 and 6 need the dataset: {e}"]
