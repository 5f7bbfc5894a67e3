"""The teacher's grading of students' copies: each blank's function through the project's tests, in points.

    python teaching/grade.py ~/hw1/alice                              # one copy: a points table
    python teaching/grade.py ~/hw1/alice --json alice.json            # and the same as JSON
    python teaching/grade.py ~/hw1/submissions --out ~/hw1/results --jobs 2     # a class
    python teaching/grade.py --check-kit                              # the tests against wrong_solutions.py

A class is a folder with one student copy per sub-folder; RESULTS gets RESULTS/NAME/results.json for each (the
autograder format Gradescope reads: score, output, and one test per blank with score, max_score, output) and
RESULTS/grades.csv for the class, written whole or not at all.

What the submission can and cannot steer. Each copy is graded in a fresh folder holding the tracked files of
this project, less the teacher's files (no key, patch, wrong or right solution: what a student's copy lacks),
with all six blanks blank. Only the blanks' functions are taken from the student's file -- the last
definition, as in Python, with the imports, helpers and constants (annotated or not) it uses, `from
__future__` lines first; any other top-level statement of the file is left behind -- into graded/BLANK.py,
which grade_plugin.py puts in place of the project's function during that blank's tests
(test_exercise_BLANK_*, listed in TESTS). The tests are this project's, never the copy's. The score is read
from the JUnit report pytest writes to a file the grader opened outside the graded folder (the graded Python
gets only its descriptor), never from printed output; a test that failed, errored, was skipped or is missing
from the report counts as failed. The graded Python runs with a minimal environment (HOME and TMPDIR inside
its folder), limits on time, memory, file size and processes, in its own process group, killed whole at the
limit. A reason is the failed test's own message; one that quotes a line of the key, the patches, the
solutions or the reference functions is hidden. TEACHER.md says what this does not protect against.

Points: POINTS[blank] shared among its tests by TESTS' weights: the worked cases and properties carry the
points, a smoke test of a training step little (a placeholder that only trains gets at most a fifth).

--check-kit grades every solution of teaching/wrong_solutions.py the same way: each wrong one must lose
points and each right one must get them all.
"""

import ast
import concurrent.futures
import csv
import ctypes
import io
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

if __name__ == "__main__":  # SIGTERM (a scheduler, `timeout`) ends the program as Ctrl-C does, from here on
    signal.signal(signal.SIGTERM, signal.default_int_handler)
try:  # torch takes seconds to load: Ctrl-C or SIGTERM meanwhile ends in one line, not a traceback
    import data
    from safe_files import ownership
    from teaching.compare import Parser, tracked_files
    from teaching.make_student_copy import BLANKS, POINTS, TEACHER_ONLY, blank, find
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise  # the program importing this module says so
    print("interrupted while starting: nothing written", file=sys.stderr)
    sys.exit(130)

PROGRAM = "teaching/grade.py"
TESTS = {  # each blank's tests, known in advance, and their weights: worked cases and properties carry it
    "spectrogram": {
        "test_exercise_spectrogram_matches_a_log_mel_computed_step_by_step": 3,
        "test_exercise_spectrogram_properties_gain_compression_and_pitch": 2,
    },
    "pos_weight": {
        "test_exercise_pos_weight_worked_cases": 9,
        "test_exercise_pos_weight_trains_the_weighted_loss": 1,
    },
    "tt_agg_forward": {
        "test_exercise_tt_agg_forward_worked_cases": 6,
        "test_exercise_tt_agg_forward_one_training_step_reaches_both_towers": 4,
    },
    "negative_sampling": {
        "test_exercise_negative_sampling_pairs": 7,
        "test_exercise_negative_sampling_follows_the_generator_and_trains": 3,
    },
    "precision_at_k": {"test_exercise_precision_at_k_worked_cases_and_ties": 1},
    "average_precision": {"test_exercise_average_precision_worked_cases_and_ties": 1},
}
FORBIDDEN = (
    "test_all",
    "conftest",
    "grade_plugin",
    "pytest",
    "_pytest",
    "teaching",
)  # a blank may not import
FILE_SIZE = 256 * 2**20  # the largest file the graded Python may write (the tests' toy is far smaller)
RUNNING = set()  # the graded Pythons now running, killed at Ctrl-C
STOP = threading.Event()  # set at Ctrl-C: no graded Python starts after it


class NotGradable(Exception):
    """The student's function cannot be graded (missing, blank, does not parse): the message says why."""


# --- What is taken from the student's file: the blank's last definition and what it uses -------------------


def bound_names(node):
    """The names a top-level statement binds, when it is one that is carried (import, definition, assignment
    to plain names); None for any other statement, which is never carried."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name != "*"}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    if not isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return None
    names = set()
    for target in targets:
        for part in ast.walk(target):
            if isinstance(part, ast.Name):
                names.add(part.id)
            elif not isinstance(part, (ast.Tuple, ast.List, ast.Starred, ast.expr_context)):
                return None  # `module.attribute = ...`, `d[k] = ...`: changes something else, never carried
    return names


def plain_class(node):
    """A class definition with only its methods, assignments and docstring (no other statement runs)."""
    keep = [
        n for n in node.body if bound_names(n) is not None and not isinstance(n, (ast.Import, ast.ImportFrom))
    ]
    docstring = node.body[:1] if ast.get_docstring(node) is not None else []
    return ast.ClassDef(
        name=node.name,
        bases=node.bases,
        keywords=node.keywords,
        body=docstring + keep or [ast.Pass()],
        decorator_list=node.decorator_list,
        type_params=getattr(node, "type_params", []),
    )


def last_definition(tree, qualified):
    """The node Python ends with for `qualified` ('name' or 'Class.name') at the top of a module: the last
    definition of that name (a function defined twice counts once, the last time); None if there is none."""
    *classes, name = qualified.split(".")
    nodes = tree.body
    for c in classes:
        found = [n for n in nodes if isinstance(n, ast.ClassDef) and n.name == c]
        if not found:
            return None
        nodes = found[-1].body
    found = [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    return found[-1] if found else None


def is_blank(node):
    """Whether a function's body (after its docstring) is the copy's `raise NotImplementedError(...)`."""
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])


def carried(source, qualified, file):
    """The module graded/BLANK.py: `qualified`'s definition in the student's `source` (its class, for a
    method) with every top-level import (those in a top-level `try` too), definition and assignment whose name
    it uses, in the file's order, after the file's `from __future__` imports. Raises NotGradable with the
    reason."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        raise NotGradable(f"{file} does not parse (line {getattr(e, 'lineno', '?')})") from None
    node = last_definition(tree, qualified)
    if node is None:
        raise NotGradable(f"{qualified} is not in {file}")
    if is_blank(node):
        raise NotGradable("not written (still the copy's NotImplementedError)")
    future = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    statements = []  # the top level, with the imports of the start-up `try` (the scripts import torch in one)
    for n in tree.body:
        statements += (
            [i for i in n.body if isinstance(i, (ast.Import, ast.ImportFrom))]
            if isinstance(n, ast.Try)
            else [n]
        )
    candidates = [n for n in statements if n not in future and bound_names(n) is not None]
    top = qualified.split(".")[0]
    last = [n for n in candidates if top in bound_names(n)][-1]  # the definition Python ends with
    candidates = [n for n in candidates if n is last or top not in bound_names(n)]
    keep = {id(last)}
    needed = {
        part.id for n in candidates if id(n) in keep for part in ast.walk(n) if isinstance(part, ast.Name)
    }
    grown = True
    while grown:  # the names used by what is kept, and by what those names are bound to, and so on
        grown = False
        for n in candidates:
            if id(n) not in keep and bound_names(n) & needed:
                keep.add(id(n))
                needed |= {part.id for part in ast.walk(n) if isinstance(part, ast.Name)}
                grown = True
    body = [plain_class(n) if isinstance(n, ast.ClassDef) else n for n in candidates if id(n) in keep]
    for n in body:
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            modules = [n.module or ""] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names]
            bad = [m for m in modules if m.split(".")[0] in FORBIDDEN]
            if bad:
                raise NotGradable(
                    f"it imports {bad[0]}: a blank's code may not use the tests or the test runner"
                )
    return ast.unparse(ast.fix_missing_locations(ast.Module(body=future + body, type_ignores=[]))) + "\n"


def transplant(reference, function, qualified):
    """`reference` (a file's source) with the definition of `qualified` replaced by `function` (a definition's
    source): a solution of wrong_solutions.py, or a test's, as a student's file."""
    node = find(ast.parse(reference), qualified)
    start = node.lineno if not node.decorator_list else node.decorator_list[0].lineno
    lines = reference.splitlines(keepends=True)
    indented = textwrap.indent(textwrap.dedent(function).strip("\n") + "\n", " " * node.col_offset)
    return "".join(lines[: start - 1]) + indented + "".join(lines[node.end_lineno :])


# --- The grading folder: the project's tracked files, the blanks blank, none of the teacher's files -------


def base_copy(folder):
    """The project in the new `folder` for grading: its tracked files less the teacher's (TEACHER_ONLY, as
    in a student's copy), every blank blank, and grade_plugin.py at the top. The reference functions, the
    key, the patches and the solutions are not in it."""
    for path in tracked_files(ROOT):
        source = os.path.join(ROOT, path)
        teachers = any(path == p or path.startswith(p + "/") for p in TEACHER_ONLY)
        if teachers or not os.path.isfile(source) or os.path.islink(source):
            continue
        os.makedirs(os.path.join(folder, os.path.dirname(path)), exist_ok=True)
        shutil.copyfile(source, os.path.join(folder, path))
    for name, (file, qualified, hint) in BLANKS.items():
        path = os.path.join(folder, file)
        with open(path, encoding="utf-8") as f:
            text = blank(f.read(), qualified, name, hint)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    shutil.copyfile(os.path.join(HERE, "grade_plugin.py"), os.path.join(folder, "grade_plugin.py"))


def key_texts():
    """What no reason may quote: every line (16 characters or more) of the teacher's files (the key, the
    patches, the solutions, this page) and of the reference functions of the blanks, and the key's numbers."""
    texts = set()
    for entry in TEACHER_ONLY:
        path = os.path.join(ROOT, entry)
        files = (
            [os.path.join(r, n) for r, _, ns in os.walk(path) for n in ns] if os.path.isdir(path) else [path]
        )
        for name in files:
            if os.path.isfile(name):
                with open(name, encoding="utf-8", errors="replace") as f:
                    texts.update(line.strip() for line in f if len(line.strip()) >= 16)
                if name.endswith(".json"):
                    with open(name, encoding="utf-8") as f:
                        numbers = [m for m in json.load(f, parse_float=str).get("key", {}).values()]
                    texts.update(v for m in numbers for arms in m.values() for v in arms.get("patched", ()))
    for file, qualified, _ in BLANKS.values():
        with open(os.path.join(ROOT, file), encoding="utf-8") as f:
            source = f.read()
        node = find(ast.parse(source), qualified)
        for line in source.splitlines()[node.lineno - 1 : node.end_lineno]:
            if len(line.strip()) >= 16:
                texts.add(line.strip())
    return texts


# --- One submission graded: the graded Python, its limits, its report ---------------------------------------


def user_tasks():
    """How many processes and threads this user runs now (RLIMIT_NPROC counts them all)."""
    count, uid = 0, os.getuid()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return count


def limits(memory, processes):
    """The graded Python's limits, set in the child before it runs: address space, file size, processes."""

    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        cap = processes if hard == resource.RLIM_INFINITY else min(processes, hard)
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))

    return preexec


def run_tests(folder, blanks, settings, timeout):
    """`pytest test_all.py` on the blanks' tests in `folder`/project, limited: (the report's path or None,
    what stopped it or '')."""
    project = os.path.join(folder, "project")
    for name in ("home", "tmp"):
        os.makedirs(os.path.join(project, f".{name}"))
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
        "HOME": os.path.join(project, ".home"),
        "TMPDIR": os.path.join(project, ".tmp"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": str(settings["threads"]),
        "MPLBACKEND": "Agg",
    }
    report = os.path.join(folder, "report.xml")  # outside the graded folder: the graded Python gets its fd
    fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    tests = " or ".join(f"test_exercise_{b}_" for b in blanks)
    command = [sys.executable, "-m", "pytest", "test_all.py", "-q", "-p", "no:cacheprovider", "-p"]
    command += ["grade_plugin", "-k", tests, f"--junitxml=/dev/fd/{fd}", "--basetemp", env["TMPDIR"] + "/t"]
    stopped = ""
    try:
        if STOP.is_set():
            raise KeyboardInterrupt
        process = subprocess.Popen(
            command,
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(fd,),
            start_new_session=True,  # its own process group, killed whole below
            preexec_fn=limits(settings["memory"], settings["processes"]),
        )
        RUNNING.add(process)
    finally:
        os.close(fd)
    try:
        code = process.wait(timeout=timeout)
        if code < 0:
            stopped = f"stopped by signal {-code} (the memory limit, {settings['memory'] // 2**30} GB?)"
        elif code not in (0, 1):  # 1: some test failed; anything else: pytest itself could not run them
            stopped = f"the test run ended with exit code {code} (the tests could not be collected?)"
    except subprocess.TimeoutExpired:
        stopped = f"stopped at the time limit ({timeout:.0f} s)"
    finally:
        with_group_killed(process)
        RUNNING.discard(process)
    return report, stopped


def with_group_killed(process):
    """Kill what is left of the graded Python's process group (its children too), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def reason_of(outcome, message, secrets):
    """What a student reads for a failed test: the test's own message, in one line."""
    first = (message or "").strip().split("\n")[0].strip()
    if outcome == "skipped":
        text = "skipped (a skipped test counts as failed)"
    elif first.startswith("AssertionError: "):
        text = first[len("AssertionError: ") :]
    elif first.startswith("Failed: "):
        text = first[len("Failed: ") :]
    elif first.startswith("assert ") or not first:
        text = f"a check failed: {first or 'no message'}"
    else:
        text = f"your code raised {first}"
    if len(text) > 300:
        text = text[:297] + "..."
    if any(t in text for t in secrets) or any(t in (message or "") for t in secrets if len(t) >= 24):
        return "its message quoted the teacher's material: hidden"
    return text


def read_report(path, blanks, stopped, secrets):
    """{test: reason} for every expected test of `blanks` ('' when it passed) from pytest's JUnit report; a
    test the report lacks, or names twice with different outcomes, failed."""
    outcomes = {}
    try:
        if os.path.getsize(path) > FILE_SIZE:
            raise ValueError("too large")
        cases = ElementTree.parse(path).getroot().iter("testcase")
    except (OSError, ValueError, ElementTree.ParseError):
        cases = []
    for case in cases:
        name = case.get("name", "")
        bad = [c for c in case if c.tag in ("failure", "error", "skipped")]
        reason = reason_of(bad[0].tag, bad[0].get("message"), secrets) if bad else ""
        if name in outcomes and outcomes[name] != reason:
            reason = outcomes[name] or reason or "reported twice"
        outcomes[name] = reason
    missing = f"did not run: {stopped or 'the test run ended before it (a crash?)'}"
    return {test: outcomes.get(test, missing) for b in blanks for test in TESTS[b]}


def grade_files(sources, blanks, base, work, settings, secrets, deadline):
    """Grade one submission: `sources` maps a blank's file to the student's text (None: not there). Returns
    ({blank: {"points", "of", "tests": {test: reason}, "reason"}}, seconds)."""
    tick = time.monotonic()
    folder = tempfile.mkdtemp(dir=work, prefix="submission-")  # ours: made here, removed at the end
    try:
        shutil.copytree(base, os.path.join(folder, "project"))
        graded = os.path.join(folder, "project", "graded")
        os.makedirs(graded)
        table, runnable = {}, {}
        for b in blanks:
            file, qualified, _ = BLANKS[b]
            try:
                if sources.get(file) is None:
                    raise NotGradable(f"{file} is not in the copy, or cannot be read as text")
                module = carried(sources[file], qualified, file)
            except NotGradable as e:
                table[b] = {"points": 0.0, "of": POINTS[b], "tests": {}, "reason": str(e)}
                continue
            with open(os.path.join(graded, f"{b}.py"), "w", encoding="utf-8") as f:
                f.write(module)
            runnable[b] = [file[: -len(".py")], qualified]
        if runnable:
            with open(os.path.join(graded, "blanks.json"), "w", encoding="utf-8") as f:
                json.dump(runnable, f)
            timeout = min(settings["timeout"], deadline - time.monotonic())
            if timeout <= 0:
                report, stopped = os.path.join(folder, "none.xml"), "not run: the class's time limit ran out"
            else:
                report, stopped = run_tests(folder, list(runnable), settings, timeout)
            outcomes = read_report(report, list(runnable), stopped, secrets)
            for b in runnable:
                tests = {t: outcomes[t] for t in TESTS[b]}
                share = sum(w for t, w in TESTS[b].items() if not tests[t]) / sum(TESTS[b].values())
                failed = [r for r in tests.values() if r]
                table[b] = {"points": round(POINTS[b] * share, 2), "of": POINTS[b], "tests": tests}
                table[b]["reason"] = failed[0] if failed else ""
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {b: table[b] for b in blanks}, time.monotonic() - tick


def copy_sources(copy, blanks):
    """{file: the student's text, or None} for the files of `blanks` in the student's `copy`."""
    sources = {}
    for b in blanks:
        path = os.path.join(copy, BLANKS[b][0])
        try:
            with open(path, encoding="utf-8") as f:
                sources[BLANKS[b][0]] = f.read() if os.path.isfile(path) else None
        except (OSError, UnicodeDecodeError):
            sources[BLANKS[b][0]] = None
    return sources


# --- What the teacher gets: the table, results.json, grades.csv ---------------------------------------------


def blank_output(row):
    """A blank's lines for the student: all passed, or each failed test with its reason."""
    if not row["tests"]:
        return f"0 points: {row['reason']}"
    failed = [f"- {test}: {reason}" for test, reason in row["tests"].items() if reason]
    if not failed:
        return f"all {len(row['tests'])} tests pass"
    return "\n".join([f"{len(failed)} of {len(row['tests'])} tests failed:", *failed])


def gradescope(table):
    """The autograder results.json Gradescope reads (no execution_time: a second run must give the same
    file, and the time is in grades.csv)."""
    total = round(sum(row["points"] for row in table.values()), 2)
    tests = [
        {"name": b, "score": row["points"], "max_score": row["of"], "output": blank_output(row)}
        for b, row in table.items()
    ]
    of = sum(row["of"] for row in table.values())
    output = f"{total} of {of} points: each blank is graded by the course's tests (test_exercise_BLANK_*)"
    return {"score": total, "output": output, "tests": tests}


def print_table(name, table, seconds=None):
    lines = [f"{name}:"]
    for b, row in table.items():
        lines.append(f"  {b:18s} {row['points']:5.2f} / {row['of']}  {row['reason'] or 'all tests pass'}")
    total = round(sum(row["points"] for row in table.values()), 2)
    after = f" ({seconds:.0f} s)" if seconds is not None else ""
    lines.append(f"  {'total':18s} {total:5.2f} / {sum(row['of'] for row in table.values())}{after}")
    print("\n".join(lines), flush=True)


def is_submission(path):
    """A sub-folder of the class's folder that is a student's copy: a folder, not hidden (.git, .DS_Store)."""
    return os.path.isdir(path) and not os.path.basename(path).startswith(".")


def in_parallel(jobs, calls, done):
    """done(i, calls[i]()) for each call, in order, `jobs` calls at a time. At Ctrl-C (or an error) what has
    not started is cancelled and the graded Pythons running are killed before it goes on up."""
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(call) for call in calls]
        try:
            return [done(i, future.result()) for i, future in enumerate(futures)]
        except BaseException:
            STOP.set()
            for future in futures:
                future.cancel()
            for process in list(RUNNING):
                with_group_killed(process)
            raise


def grade_class(submissions, blanks, settings, work, secrets):
    """{name: (table, seconds)} for every sub-folder of `submissions`, `settings['jobs']` at a time."""
    names = sorted(n for n in os.listdir(submissions) if is_submission(os.path.join(submissions, n)))
    deadline = time.monotonic() + settings["class_timeout"]
    base = os.path.join(work, "base")
    base_copy(base)
    calls = [
        lambda name=name: grade_files(
            copy_sources(os.path.join(submissions, name), blanks),
            blanks,
            base,
            work,
            settings,
            secrets,
            deadline,
        )
        for name in names
    ]
    results = in_parallel(settings["jobs"], calls, lambda i, result: print_table(names[i], *result) or result)
    return dict(zip(names, results, strict=True))


def write_results(out, results, blanks):
    """RESULTS/NAME/results.json and RESULTS/grades.csv, in a folder that replaces `out` whole (ours only)."""
    with ownership.atomic_folder(out, PROGRAM) as folder:
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["name", "score", "max_score", *blanks, "seconds", "not run"])
        for name, (table, seconds) in results.items():
            os.makedirs(os.path.join(folder, name))
            with open(os.path.join(folder, name, "results.json"), "w", encoding="utf-8") as f:
                json.dump(gradescope(table), f, indent=1)
                f.write("\n")
            record = gradescope(table)
            missing = [
                b
                for b, row in table.items()
                if any(r.startswith("did not run") for r in row["tests"].values())
            ]
            cells = [name, record["score"], sum(POINTS[b] for b in blanks)]
            writer.writerow(
                [*cells, *(table[b]["points"] for b in blanks), round(seconds), " ".join(missing)]
            )
        with open(os.path.join(folder, "grades.csv"), "w", encoding="utf-8") as f:
            f.write(rows.getvalue())


def check_kit(blanks, settings, work, secrets):
    """Every solution of teaching/wrong_solutions.py graded as a submission: a row per solution."""
    from teaching import wrong_solutions

    base = os.path.join(work, "base")
    base_copy(base)
    jobs = []
    for b in blanks:
        file, qualified, _ = BLANKS[b]
        with open(os.path.join(ROOT, file), encoding="utf-8") as f:
            reference = f.read()
        for expected, name, source in wrong_solutions.SOLUTIONS[b]:
            jobs.append((b, expected, name, {file: transplant(reference, source, qualified)}))

    def done(i, result):
        b, expected, name, _ = jobs[i]
        row = result[0][b]
        ok = (expected == "right") == (row["points"] == row["of"])
        shown = row["reason"] or "passes"
        print(f"{'ok ' if ok else 'BAD'} {b:18s} {expected:5s} {name}: {shown}", flush=True)
        return {"blank": b, "expected": expected, "name": name, "points": row["points"], "as_expected": ok}

    calls = [
        lambda b=b, sources=sources: grade_files(sources, [b], base, work, settings, secrets, math.inf)
        for b, _, _, sources in jobs
    ]
    return in_parallel(settings["jobs"], calls, done)


def hide_from_children(hidden):
    """Linux: make this process's /proc entries (its folder, environment) unreadable by the graded Pythons,
    which run as the same user (not root, which reads them anyway); `False` restores it."""
    try:
        ctypes.CDLL(None).prctl(4, 0 if hidden else 1, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def parse_args(argv):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "copy", nargs="?", help="a student's copy, or with --out a folder of copies (a class)"
    )
    parser.add_argument("--out", help="a class: the results folder (NAME/results.json, grades.csv)")
    parser.add_argument("--json", help="one copy: also write the table as JSON to this file")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds per submission before it is stopped (default 900)"
    )
    parser.add_argument(
        "--class-timeout", type=float, default=6 * 3600, help="seconds for the class (default 6 hours)"
    )
    parser.add_argument(
        "--memory", type=float, default=8, help="GB of address space per graded Python (default 8)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=sorted(BLANKS), default=list(POINTS), help="these blanks"
    )
    parser.add_argument("--check-kit", action="store_true", help="grade teaching/wrong_solutions.py instead")
    args = parser.parse_args(argv)
    if args.check_kit == bool(args.copy):
        parser.exit(2, "error: name a student's copy (or a class with --out), or give --check-kit\n")
    for flag in ("timeout", "class_timeout", "memory"):
        value = getattr(args, flag)
        if not math.isfinite(value) or value <= 0:
            parser.exit(2, f"error: --{flag.replace('_', '-')} must be a positive number, got {value}\n")
    if args.jobs < 1:
        parser.exit(2, f"error: --jobs must be 1 or more, got {args.jobs}\n")
    if args.out and args.json:
        parser.exit(2, "error: --json is for one copy; a class's results go to --out\n")
    if args.copy and not os.path.isdir(args.copy):
        parser.exit(2, f"error: {args.copy} is not a folder\n")
    if args.copy and args.out:
        if os.path.realpath(args.out).startswith(os.path.realpath(args.copy) + os.sep):
            parser.exit(2, f"error: {args.out} lies inside {args.copy}: it would be graded as a student\n")
        if not any(is_submission(os.path.join(args.copy, n)) for n in os.listdir(args.copy)):
            parser.exit(
                2, f"error: {args.copy} holds no sub-folder: a class is one student copy per sub-folder\n"
            )
    elif args.copy and not all(os.path.isfile(os.path.join(args.copy, BLANKS[b][0])) for b in args.only):
        parser.exit(
            2, f"error: {args.copy} is not a copy of the project (no {BLANKS[args.only[0]][0]} in it)\n"
        )
    try:
        tracked_files(ROOT)
        for path in (args.out, args.json):
            if path:
                ownership.check_outside_project(path)
                ownership.check_out(path, folder=path == args.out)
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    except (OSError, subprocess.CalledProcessError):
        parser.exit(
            2, f"error: {ROOT} is not a git checkout: the grading copy is made of its tracked files\n"
        )
    for flag in ("copy", "out", "json"):
        if getattr(args, flag):
            setattr(args, flag, os.path.abspath(getattr(args, flag)))  # before the grader changes folder
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    settings = {
        "jobs": args.jobs,
        "timeout": args.timeout,
        "class_timeout": args.class_timeout,
        "memory": int(args.memory * 2**30),
        "processes": user_tasks() + 512,
        "threads": max(1, (os.cpu_count() or 1) // args.jobs),
    }
    secrets = key_texts()
    STOP.clear()
    here = os.getcwd()
    work = tempfile.mkdtemp(prefix="matsound-grade-")  # ours: made here, removed at the end
    bad = []
    try:
        os.chdir(work)  # a graded Python that looks at its parent's folder finds this one, not the teacher's
        hide_from_children(True)
        if args.check_kit:
            rows = check_kit(args.only, settings, work, secrets)
            bad = [row for row in rows if not row["as_expected"]]
            print(f"{len(rows) - len(bad)} of {len(rows)} solutions as expected")
            record = {"written_by": f"{ownership.SIGNATURE} {PROGRAM}", "check_kit": rows}
        elif args.out:
            results = grade_class(args.copy, args.only, settings, work, secrets)
            write_results(args.out, results, args.only)
            print(f"wrote {args.out}: grades.csv and results.json for {len(results)} submission(s)")
        else:
            sources = copy_sources(args.copy, args.only)
            base_copy(os.path.join(work, "base"))
            table, seconds = grade_files(
                sources, args.only, os.path.join(work, "base"), work, settings, secrets, math.inf
            )
            print_table(args.copy, table, seconds)
            total = round(sum(row["points"] for row in table.values()), 2)
            record = {"written_by": f"{ownership.SIGNATURE} {PROGRAM}", "copy": args.copy, "blanks": table}
            record.update({"total": total, "of": sum(POINTS[b] for b in args.only)})
        if args.json:
            text = json.dumps(record, indent=1) + "\n"
            ownership.atomic_write(args.json, lambda f: f.write(text.encode()))
    except data.DataError as e:
        parser.exit(2, f"error: {e}\n")
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        sys.exit(130)
    finally:
        hide_from_children(False)
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)
    if bad:
        print(
            f"error: {len(bad)} solution(s) not as expected: the blanks' tests need a case", file=sys.stderr
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
