"""The teacher's grading of a student's copy: each blank's function through the project's tests, in points.

    python teaching/grade.py ~/hw1/alice                     # a points table
    python teaching/grade.py ~/hw1/alice --json alice.json   # and the same as JSON
    python teaching/grade.py --check-kit                     # the tests against teaching/wrong_solutions.py

For every blank (make_student_copy.BLANKS) it takes the student's function from the copy -- with any import or
top-level helper the student added to that file -- and puts it in place of the reference function in a fresh
copy of this project, so that the blank is graded alone, with the reference code around it, and by this
project's tests, not by the copy's (which a student may have changed). Then `pytest test_all.py -k
test_exercise_BLANK_` runs there, in a new Python, within a time limit. The points are POINTS[blank] times
the share of the blank's tests passed; a function that is still blank, that does not parse, that does not
import or that hangs gets 0, with the reason. The rubric and the exercises' points are in TEACHER.md.

--check-kit grades every solution of teaching/wrong_solutions.py the same way: each wrong one must lose
points and each right one must get them all; it prints which test caught each wrong one.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
import data  # noqa: E402  (the project's modules, found from this folder)
from safe_files import ownership  # noqa: E402
from teaching.compare import Parser, copy_project  # noqa: E402
from teaching.make_student_copy import BLANKS, find  # noqa: E402

PROGRAM = "teaching/grade.py"
POINTS = {
    "spectrogram": 3,
    "pos_weight": 1,
    "tt_agg_forward": 2,
    "negative_sampling": 3,
    "precision_at_k": 2,
    "average_precision": 2,
}  # 13 in all; TEACHER.md says why each weighs what it does


class NotGradable(Exception):
    """The student's function cannot be graded (missing, blank, does not parse): the message says why."""


def definition(source, qualified):
    """The source of `qualified`'s definition in `source` (decorators included), dedented."""
    node = find(ast.parse(source), qualified)
    start = node.lineno if not node.decorator_list else node.decorator_list[0].lineno
    lines = source.splitlines(keepends=True)[start - 1 : node.end_lineno]
    return textwrap.dedent("".join(lines))


def is_blank(node):
    """Whether a function's body (after its docstring) is the copy's `raise NotImplementedError(...)`."""
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])


def added_top_level(reference, student):
    """The student's top-level imports, and the definitions and assignments whose names the reference file
    lacks, as source: what a student's function may need beyond the file's own names."""
    reference_names = set()
    for node in ast.parse(reference).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            reference_names.add(node.name)
        if isinstance(node, ast.Assign):
            reference_names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    added = []
    for node in ast.parse(student).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            added.append(ast.get_source_segment(student, node))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name not in reference_names:
            added.append(ast.get_source_segment(student, node))
        elif isinstance(node, ast.Assign) and not any(
            isinstance(t, ast.Name) and t.id in reference_names for t in node.targets
        ):
            added.append(ast.get_source_segment(student, node))
    return added


def transplant(reference, function, qualified, extra=()):
    """`reference` (a file's source) with the definition of `qualified` replaced by `function` (a definition's
    source), and `extra` (top-level source) appended at its end."""
    node = find(ast.parse(reference), qualified)
    start = node.lineno if not node.decorator_list else node.decorator_list[0].lineno
    lines = reference.splitlines(keepends=True)
    indented = textwrap.indent(textwrap.dedent(function).strip("\n") + "\n", " " * node.col_offset)
    tail = "".join(f"\n\n{block}\n" for block in extra)
    return "".join(lines[: start - 1]) + indented + "".join(lines[node.end_lineno :]) + tail


def student_function(copy, blank):
    """(the student's definition, what the student added at the top of the file) for `blank` in `copy`."""
    file, qualified, _ = BLANKS[blank]
    path = os.path.join(copy, file)
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        tree = ast.parse(source)
    except OSError as e:
        raise NotGradable(f"{file} cannot be read ({e.strerror})") from None
    except (SyntaxError, ValueError) as e:
        raise NotGradable(f"{file} does not parse (line {getattr(e, 'lineno', '?')})") from None
    try:
        node = find(tree, qualified)
    except StopIteration:
        raise NotGradable(f"{qualified} is not in {file}") from None
    if is_blank(node):
        raise NotGradable("not written (still the copy's NotImplementedError)")
    with open(os.path.join(ROOT, file), encoding="utf-8") as f:
        reference = f.read()
    return definition(source, qualified), added_top_level(reference, source)


def run_tests(blank, function, extra, timeout):
    """The blank's tests in a fresh copy of this project with `function` in place: (passed, tests, reason)."""
    file, qualified, _ = BLANKS[blank]
    work = tempfile.mkdtemp(prefix="matsound-grade-")  # a fresh folder: ours to delete
    try:
        copy_project(ROOT, work)
        path = os.path.join(work, file)
        with open(path, encoding="utf-8") as f:
            reference = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(transplant(reference, function, qualified, extra))
        command = [sys.executable, "-m", "pytest", "test_all.py", "-q", "-p", "no:cacheprovider", "-rf"]
        command += ["-k", f"test_exercise_{blank}_"]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            r = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return 0, None, f"hung: its tests took over {timeout} s"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    passed = int((re.search(r"(\d+) passed", r.stdout) or [0, 0])[1])
    failed = int((re.search(r"(\d+) failed", r.stdout) or [0, 0])[1])
    errors = int((re.search(r"(\d+) errors?", r.stdout) or [0, 0])[1])
    if passed + failed + errors == 0:
        last = (r.stdout.strip().splitlines() or r.stderr.strip().splitlines() or ["no output"])[-1]
        return 0, None, f"its tests did not run (does it import?): {last[:200]}"
    reason = ""
    caught = re.findall(r"^FAILED test_all\.py::(\S+)", r.stdout, flags=re.M)
    explanation = re.findall(r"^E +(.+)$", r.stdout, flags=re.M)
    if caught:
        reason = f"{', '.join(caught)}: {explanation[0][:160] if explanation else 'failed'}"
    elif errors:
        reason = "a test could not run (error)"
    return passed, passed + failed + errors, reason


def grade(copy, blanks, timeout):
    """{blank: {"points", "of", "passed", "tests", "reason"}} for the student's `copy`."""
    table = {}
    for blank in blanks:
        try:
            function, extra = student_function(copy, blank)
            passed, tests, reason = run_tests(blank, function, extra, timeout)
        except NotGradable as e:
            passed, tests, reason = 0, None, str(e)
        points = 0.0
        if tests:
            points = round(POINTS[blank] * passed / tests, 2)
        table[blank] = {
            "points": points,
            "of": POINTS[blank],
            "passed": passed,
            "tests": tests,
            "reason": reason,
        }
        print(f"  {blank:18s} {points:5.2f} / {POINTS[blank]}  {reason or 'all tests pass'}", flush=True)
    return table


def check_kit(blanks, timeout):
    """Every solution of teaching/wrong_solutions.py graded: a row per solution, and whether as expected."""
    from teaching import wrong_solutions

    rows = []
    for blank in blanks:
        for expected, name, source in wrong_solutions.SOLUTIONS[blank]:
            passed, tests, reason = run_tests(blank, source, (), timeout)
            ok = (expected == "right") == (tests is not None and passed == tests)
            rows.append(
                {"blank": blank, "expected": expected, "name": name, "passed": passed, "tests": tests}
            )
            rows[-1].update({"reason": reason, "as_expected": ok})
            shown = reason or "passes"
            print(f"{'ok ' if ok else 'BAD'} {blank:18s} {expected:5s} {name}: {shown}", flush=True)
    return rows


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("copy", nargs="?", help="a student's copy (made by make_student_copy.py)")
    parser.add_argument("--json", help="also write the table as JSON to this file")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds per blank before it counts as hung"
    )
    parser.add_argument(
        "--only", nargs="+", choices=sorted(BLANKS), default=list(POINTS), help="these blanks"
    )
    parser.add_argument("--check-kit", action="store_true", help="grade teaching/wrong_solutions.py instead")
    args = parser.parse_args(argv)
    if args.check_kit == bool(args.copy):
        parser.exit(2, "error: name a student's copy, or give --check-kit\n")
    if args.timeout <= 0:
        parser.exit(2, f"error: --timeout must be positive, got {args.timeout}\n")
    if args.copy and not all(os.path.isfile(os.path.join(args.copy, BLANKS[b][0])) for b in args.only):
        parser.exit(
            2, f"error: {args.copy} is not a copy of the project (no {BLANKS[args.only[0]][0]} in it)\n"
        )
    try:
        if args.json:
            ownership.check_outside_project(args.json)
            ownership.check_out(args.json)
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    try:
        if args.check_kit:
            record = {
                "written_by": f"{ownership.SIGNATURE} {PROGRAM}",
                "check_kit": check_kit(args.only, args.timeout),
            }
            bad = [row for row in record["check_kit"] if not row["as_expected"]]
            print(
                f"{len(record['check_kit']) - len(bad)} of {len(record['check_kit'])} solutions as expected"
            )
            if bad:
                print(
                    f"error: {len(bad)} solution(s) not as expected: the blanks' tests need a case",
                    file=sys.stderr,
                )
        else:
            print(f"{args.copy}:")
            table = grade(args.copy, args.only, args.timeout)
            total = round(sum(row["points"] for row in table.values()), 2)
            print(f"  {'total':18s} {total:5.2f} / {sum(POINTS[b] for b in args.only)}")
            record = {"written_by": f"{ownership.SIGNATURE} {PROGRAM}", "copy": os.path.abspath(args.copy)}
            record.update({"blanks": table, "total": total, "of": sum(POINTS[b] for b in args.only)})
        if args.json:
            text = json.dumps(record, indent=1) + "\n"
            ownership.atomic_write(args.json, lambda f: f.write(text.encode()))
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        sys.exit(130)
    if args.check_kit and bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
