"""A student's copy of the project: chosen functions' bodies blanked, each with a test that checks it.

    python teaching/make_student_copy.py OUT_DIR      # then: cd OUT_DIR && pytest test_all.py -k pos_weight

Writes the project's files into OUT_DIR (a new folder), without the teacher's material (teaching/patches/,
teaching/KEY.md) and without data or runs. In the copy, the body of each function in BLANKS is replaced by
`raise NotImplementedError(...)`; its signature, docstring and the rest of the file are kept. The functions
are found through the code's structure (Python's `ast`: a function by its name, a method by Class.name),
so the experiment scripts carry no exercise markers. Each blank has tests named after it in test_all.py
(`pytest test_all.py -k <name>`): they check the function by its behaviour -- properties and small worked
cases -- so any correct solution passes, not only the reference one. On the full project they all pass;
in the copy they fail until the blank is filled. The copy runs: the untouched scripts work, and a script
that reaches a blank stops with the exercise's message.
"""

import argparse
import ast
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from teaching.measure import copy_project  # noqa: E402

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
TEACHER_ONLY = [os.path.join("teaching", "patches"), os.path.join("teaching", "KEY.md")]


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a folder that does not exist yet")
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
    if (
        out == ROOT
        or out.startswith(ROOT + os.sep)
        and not os.path.relpath(out, ROOT).startswith(("runs", "data"))
    ):
        parser.exit(2, f"error: {args.out} is inside the project: name a folder outside it\n")
    staging = out + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    copy_project(staging)  # as measure.py copies it: no data, runs or git history
    for path in TEACHER_ONLY:
        target = os.path.join(staging, path)
        shutil.rmtree(target) if os.path.isdir(target) else os.path.exists(target) and os.remove(target)
    for name in args.only:
        file, qualified, hint = BLANKS[name]
        path = os.path.join(staging, file)
        with open(path) as f:
            source = blank(f.read(), qualified, name, hint)
        with open(path, "w") as f:
            f.write(source)
    os.rename(staging, out)  # the copy appears whole or not at all
    print(
        f"wrote {args.out}: {len(args.only)} functions to write ({', '.join(args.only)}); "
        f"check one with `pytest test_all.py -k NAME` inside it"
    )


if __name__ == "__main__":
    main()
