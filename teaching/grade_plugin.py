"""The student's functions in a grading copy: teaching/grade.py puts this file at the top of the copy and runs
`python -m pytest test_all.py -p grade_plugin`.

The copy's own files hold every blank still blank. During each test of a blank (test_exercise_BLANK_*), the
project's function is replaced by the student's, imported from graded/BLANK.py: the student's definition with
the imports, helpers and constants it uses, nothing else of the student's file (grade.py writes it). A file
that does not import fails that blank's tests only, with the reason; the other blanks keep theirs.
"""

import json
import os

import pytest

import data
import metrics
import tt_agg
import visual_only

HERE = os.path.dirname(os.path.abspath(__file__))
GRADED = os.path.join(HERE, "graded")
with open(os.path.join(GRADED, "blanks.json"), encoding="utf-8") as f:
    BLANKS = json.load(f)  # blank -> [module, "function" or "Class.method"], the blanks graded in this copy
MODULES = {
    "data": data,
    "metrics": metrics,
    "tt_agg": tt_agg,
    "visual_only": visual_only,
}  # the blanks' files


@pytest.fixture(autouse=True)
def students_function(request, monkeypatch):
    """The student's function in place of the project's for the test of a blank; nothing for other tests."""
    blank = next((b for b in BLANKS if request.node.name.startswith(f"test_exercise_{b}_")), None)
    if blank is None:
        return
    module_name, qualified = BLANKS[blank]
    path = os.path.join(GRADED, f"{blank}.py")
    graded = {"__name__": f"graded_{blank}", "__file__": path}  # the student's module, run on its own
    try:
        with open(path, encoding="utf-8") as f:
            exec(compile(f.read(), path, "exec"), graded)
    except Exception as e:
        pytest.fail(f"your {module_name}.py does not import: {type(e).__name__}: {e}", pytrace=False)
    owner = MODULES[module_name]
    *classes, name = qualified.split(".")
    function = graded
    for c in classes:  # a method: the project's class gets the student's method
        owner, function = getattr(owner, c), vars(function[c])
    monkeypatch.setattr(owner, name, function[name])
