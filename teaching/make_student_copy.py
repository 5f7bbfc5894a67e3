"""A student's copy of the project: chosen functions' bodies blanked, each with tests that check it.

    python teaching/make_student_copy.py OUT_DIR      # then: cd OUT_DIR && pytest test_all.py -k pos_weight

Writes the project's files as of its last commit (HEAD, through `git archive`: what git tracks, never an
untracked or uncommitted file of the teacher's) into OUT_DIR (a new folder outside the project), without the
teacher's material (TEACHER_ONLY: the key, the patches, the measuring and grading tools, the wrong solutions),
as a git repository with one commit, ready to push to a classroom host. In the copy, the body of each
function in BLANKS is replaced by `raise NotImplementedError(...)`; its signature, docstring and the rest of
the file are kept, less the imports only the blanked bodies used (the copy passes its own formatter and
linter), and the README's lines that name a teacher's file are left out. The copy carries GitHub
Classroom's autograding (.github/classroom/autograding.json, .github/workflows/classroom.yml): the copy's
tests blank by blank, each worth POINTS[blank] (feedback for the student; the grade is the teacher's
grading, which uses the teacher's tests). The functions are found through the code's structure (Python's
`ast`: a function by its name, a method by Class.name), so the experiment scripts carry no exercise markers.
Each blank has tests named after it in test_all.py (`pytest test_all.py -k <name>`): they check the function
by its behaviour -- properties and small worked cases -- so any correct solution passes, not only the
reference one. On the full
project they all pass; in the copy they fail until the blank is filled. The copy runs: the untouched scripts
work, and a script that reaches a blank stops with the exercise's message. teaching/compare.py is in the copy:
a student measures a change against the commit with it.

The copy is staged in a new hidden folder beside OUT_DIR and renamed to OUT_DIR only when complete: after an
error or Ctrl-C nothing is left. An existing OUT_DIR, or one inside the project's sources, is refused.
"""

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import data
    from safe_files import ownership
    from teaching.compare import Parser, export_commit
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

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
POINTS = {
    "spectrogram": 3,
    "pos_weight": 1,
    "tt_agg_forward": 2,
    "negative_sampling": 3,
    "precision_at_k": 2,
    "average_precision": 2,
}  # 13 in all; the teacher's page says why each weighs what it does
TEACHER_ONLY = [
    "teaching/patches",
    "teaching/KEY.md",
    "teaching/key.json",
    "teaching/TEACHER.md",
    "teaching/measure.py",
    "teaching/grade.py",
    "teaching/grade_plugin.py",
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
    """`source` with the body of `qualified` (after its docstring) replaced by one `raise`, laid out as the
    formatter lays it out."""
    node = find(ast.parse(source), qualified)
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    lines = source.splitlines(keepends=True)
    first, last = body[0].lineno - 1, node.end_lineno  # 0-based start of the body, end exclusive
    indent = " " * body[0].col_offset
    message = textwrap.wrap(f"exercise {name}: {hint}.", 100 - len(indent), drop_whitespace=False)
    message.append(f" Check it with: pytest test_all.py -k {name}")
    quoted = "".join(f"{indent}    {json.dumps(part)}\n" for part in message)
    raise_ = f"{indent}raise NotImplementedError(\n{quoted}{indent})\n"
    return "".join(lines[:first] + [raise_] + lines[last:])


def without_unused_imports(source):
    """`source` less the top-level imports (those in the start-up `try` too) of names it no longer uses (once
    its blanks are blanked). An import of the form `X as X` is a re-export (data.py's `data.MATERIALS`, ...):
    it stays."""
    tree = ast.parse(source)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    lines = source.splitlines(keepends=True)
    top = [
        n for node in tree.body for n in (node.body if isinstance(node, ast.Try) else [node])
    ]  # start-up try
    for node in reversed(top):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.asname == alias.name for alias in node.names):
                continue
            names = [alias.asname or alias.name.split(".")[0] for alias in node.names]
            if not any(name in used for name in names):
                del lines[node.lineno - 1 : node.end_lineno]
    return "".join(lines)


def readme_for_students(text):
    """The README less its lines that name a file of TEACHER_ONLY (the copy does not hold them)."""
    return "".join(
        line for line in text.splitlines(keepends=True) if not any(p in line for p in TEACHER_ONLY)
    )


def classroom(only):
    """GitHub Classroom's autograding for the copy: {path: text}, one test per blank with its points."""
    tests = [
        {
            "name": name,
            "setup": "",
            "run": f"python -m pytest test_all.py -q -p no:cacheprovider -k test_exercise_{name}_",
            "input": "",
            "output": "",
            "comparison": "included",
            "timeout": 10,
            "points": POINTS[name],
        }
        for name in only
    ]
    steps = "".join(
        f"      - name: {name}\n"
        f"        id: {name}\n"
        "        uses: classroom-resources/autograding-command-grader@v1\n"
        "        with:\n"
        f"          test-name: {name}\n"
        f"          command: python -m pytest test_all.py -q -p no:cacheprovider -k test_exercise_{name}_\n"
        "          timeout: 10\n"
        f"          max-score: {POINTS[name]}\n"
        for name in only
    )
    results = "".join(
        f"          {name.upper()}_RESULTS: ${{{{steps.{name}.outputs.result}}}}\n" for name in only
    )
    workflow = (
        "# GitHub Classroom's autograding: each blank's tests (pytest -k test_exercise_BLANK_), its points.\n"
        "name: Autograding Tests\n"
        "on: [push, repository_dispatch]\n"
        "permissions:\n  checks: write\n  actions: read\n  contents: read\n"
        "jobs:\n"
        "  run-autograding-tests:\n"
        "    runs-on: ubuntu-latest\n"
        "    if: github.actor != 'github-classroom[bot]'\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - uses: actions/setup-python@v5\n"
        "        with:\n          python-version: '3.11'\n"
        "      - name: Set up\n"
        "        run: python -m pip install -r requirements.txt\n"
        f"{steps}"
        "      - name: Autograding Reporter\n"
        "        uses: classroom-resources/autograding-grading-reporter@v1\n"
        "        env:\n"
        f"{results}"
        "        with:\n"
        f"          runners: {','.join(only)}\n"
    )
    return {
        ".github/classroom/autograding.json": json.dumps({"tests": tests}, indent=2) + "\n",
        ".github/workflows/classroom.yml": workflow,
    }


def write_copy(folder, only):
    """The student's copy in the empty `folder`: the project's last commit less TEACHER_ONLY, `only` blanked,
    the Classroom workflow, a commit."""
    export_commit(ROOT, "HEAD", folder)  # what git tracks at HEAD: no untracked or uncommitted file
    for path in TEACHER_ONLY:
        target = os.path.join(folder, path)
        if os.path.isdir(target):
            shutil.rmtree(target)  # inside the staging folder this program made
        elif os.path.lexists(target):
            os.remove(target)
    changed = {}
    for name in only:
        file, qualified, hint = BLANKS[name]
        with open(os.path.join(folder, file), encoding="utf-8") as f:
            changed[file] = blank(changed.get(file) or f.read(), qualified, name, hint)
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
        changed["README.md"] = readme_for_students(f.read())
    changed = {file: without_unused_imports(t) if file.endswith(".py") else t for file, t in changed.items()}
    changed.update(classroom(only))
    for file, text in changed.items():
        os.makedirs(os.path.dirname(os.path.join(folder, file)), exist_ok=True)
        with open(os.path.join(folder, file), "w", encoding="utf-8") as f:
            f.write(text)
    message = f"matsound, student copy: {len(only)} functions to write ({', '.join(only)})"
    for command in [["init", "-q"], ["add", "-A"], [*AUTHOR, "commit", "-q", "-m", message]]:
        subprocess.run(["git", *command], cwd=folder, check=True, capture_output=True)


def uncommitted():
    """The teacher's changes that the copy (made from HEAD) does not hold: `git status --porcelain` lines."""
    r = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.splitlines() if r.returncode == 0 else []


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
        ownership.check_outside_project(
            out
        )  # not inside the sources: a copy of the project must not land there
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    if shutil.which("git") is None:
        parser.exit(2, "error: git is not installed: the copy is made as a git repository\n")
    try:
        head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=ROOT, capture_output=True)
    except KeyboardInterrupt:
        print("interrupted: no copy written", file=sys.stderr)
        sys.exit(130)
    if head.returncode != 0:
        parser.exit(2, f"error: {ROOT} is not a git checkout with a commit: the copy is made from HEAD\n")
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
    if uncommitted():
        print(
            f"note: {len(uncommitted())} uncommitted change(s) of the project are not in the copy (from HEAD)"
        )
    print(
        f"wrote {args.out}: {len(args.only)} functions to write ({', '.join(args.only)}), a git repository "
        f"with one commit; check one with `pytest test_all.py -k NAME` inside it"
    )


if __name__ == "__main__":
    main()
