"""A student's copy of the project: chosen functions' bodies blanked, each with tests that check it.

    python teaching/make_student_copy.py OUT_DIR      # then: cd OUT_DIR && pytest test_all.py -k pos_weight

Writes the project's files into OUT_DIR (a new folder outside the project), without the teacher's material
(TEACHER_ONLY: the key, the patches, the measuring and grading tools, the wrong solutions) and without data or
runs, as a git repository with one commit, ready to push to a classroom host. In the copy, the body of each
function in BLANKS is replaced by `raise NotImplementedError(...)`; its signature, docstring and the rest of
the file are kept. The functions are found through the code's structure (Python's `ast`: a function by its
name, a method by Class.name), so the experiment scripts carry no exercise markers. Each blank has tests named
after it in test_all.py (`pytest test_all.py -k <name>`): they check the function by its behaviour --
properties and small worked cases -- so any correct solution passes, not only the reference one. On the full
project they all pass; in the copy they fail until the blank is filled. The copy runs: the untouched scripts
work, and a script that reaches a blank stops with the exercise's message. teaching/compare.py is in the copy:
a student measures a change against the commit with it.

The copy is staged in a new hidden folder beside OUT_DIR and renamed to OUT_DIR only when complete: after an
error or Ctrl-C nothing is left. An existing OUT_DIR, or one inside the project's sources, is refused.
"""

import ast
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
import data  # noqa: E402  (the project's modules, found from this folder)
from safe_files import ownership  # noqa: E402
from teaching.compare import Parser, copy_project  # noqa: E402

# name (for `pytest -k`) -> (file, function or Class.method, what to write)
BLANKS = {
    "tt_agg_forward": (
        "tt_agg.py",
        "TwoTower.forward",
        "embed both inputs, L2-normalise, cosine, scale from [-1, 1] to [0, 1] (paper 3.4.2)",
    ),
    "negative_sampling": (
        "tt_agg.py",
        "make_examples",
        "each clip with its own frame (label 1) and one negative whose material is absent from "
        "the frame (label 0)",
    ),
    "pos_weight": (
        "visual_only.py",
        "positive_weights",
        "negatives / positives of each material over the training frames",
    ),
    "precision_at_k": ("metrics.py", "precision_at_k", "the share of relevant items among the first k"),
    "average_precision": (
        "metrics.py",
        "average_precision",
        "the mean of precision@k over the ranks k of the relevant items",
    ),
    "spectrogram": ("data.py", "spectrogram", "a square, per-clip normalised log-mel image"),
}
TEACHER_ONLY = [
    "teaching/patches",
    "teaching/KEY.md",
    "teaching/key.json",
    "teaching/TEACHER.md",
    "teaching/measure.py",
    "teaching/grade.py",
    "teaching/wrong_solutions.py",
]  # the key and what grades: left out of a student's copy
AUTHOR = ["-c", "user.name=matsound", "-c", "user.email=matsound@localhost"]  # works without a git config


def find(tree, qualified):
    """The FunctionDef node of `qualified` ('name' or 'Class.name') at the top of a module's ast."""
    nodes = tree.body
    *classes, name = qualified.split(".")
    for c in classes:
        nodes = next(n for n in nodes if isinstance(n, ast.ClassDef) and n.name == c).body
    return next(n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)


def blank(source, qualified, name, hint):
    """`source` with the body of `qualified` (after its docstring) replaced by one `raise`."""
    node = find(ast.parse(source), qualified)
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    lines = source.splitlines(keepends=True)
    first, last = body[0].lineno - 1, node.end_lineno  # 0-based start of the body, end exclusive
    indent = " " * body[0].col_offset
    raise_ = (
        f"{indent}raise NotImplementedError({f'exercise {name}: {hint}. '!r}\n"
        f"{indent}                          {f'Check it with: pytest test_all.py -k {name}'!r})\n"
    )
    return "".join(lines[:first] + [raise_] + lines[last:])


def write_copy(folder, only):
    """The student's copy in the empty `folder`: the project less TEACHER_ONLY, `only` blanked, a commit."""
    copy_project(ROOT, folder)  # no data, runs or git history
    for path in TEACHER_ONLY:
        target = os.path.join(folder, path)
        if os.path.isdir(target):
            shutil.rmtree(target)  # inside the staging folder this program made
        elif os.path.lexists(target):
            os.remove(target)
    for name in only:
        file, qualified, hint = BLANKS[name]
        path = os.path.join(folder, file)
        with open(path) as f:
            source = blank(f.read(), qualified, name, hint)
        with open(path, "w") as f:
            f.write(source)
    message = f"matsound, student copy: {len(only)} functions to write ({', '.join(only)})"
    for command in [["init", "-q"], ["add", "-A"], [*AUTHOR, "commit", "-q", "-m", message]]:
        subprocess.run(["git", *command], cwd=folder, check=True, capture_output=True)


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a folder that does not exist yet, outside the project")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(BLANKS),
        default=sorted(BLANKS),
        help="blank only these functions (default: all)",
    )
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    if os.path.lexists(out):
        parser.exit(2, f"error: {args.out} already exists: name a new folder\n")
    try:
        ownership.check_outside_project(out)  # a copy of the project must not land inside its sources
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    if shutil.which("git") is None:
        parser.exit(2, "error: git is not installed: the copy is made as a git repository\n")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        parser.exit(2, f"error: {parent} is not a folder: create it first\n")
    staging = tempfile.mkdtemp(dir=parent, prefix=".tmp-student-")  # a fresh name: never anybody else's
    try:
        write_copy(staging, args.only)
        if os.path.lexists(out):  # appeared while the copy was written: left as it is
            raise FileExistsError(out)
        os.chmod(staging, 0o755)  # mkdtemp makes it private
        os.rename(staging, out)  # the copy appears whole or not at all
    except KeyboardInterrupt:
        shutil.rmtree(staging, ignore_errors=True)
        print("interrupted: no copy written", file=sys.stderr)
        sys.exit(130)
    except (OSError, subprocess.CalledProcessError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        parser.exit(
            1, f"error: the copy could not be written ({type(e).__name__}: {e}); nothing left behind\n"
        )
    print(
        f"wrote {args.out}: {len(args.only)} functions to write ({', '.join(args.only)}), a git repository "
        f"with one commit; check one with `pytest test_all.py -k NAME` inside it"
    )


if __name__ == "__main__":
    main()
