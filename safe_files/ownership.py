"""Writing files safely, for every program of the project: nothing half-written, and nothing replaced or
deleted that the project cannot prove it wrote.

The rule: a file or folder is ours when it carries proof that the project wrote it, and only what is ours is
ever replaced or deleted.
- A folder the project writes (a run folder, a student copy, the study's figures) holds MANIFEST, naming
  every file written into it; the folder is ours when it is a real folder (not a link) holding nothing else.
- A single file is ours when its folder's manifest names it, or by its own content: a dataset file (its
  format_version), a JSON object whose "written_by" begins with SIGNATURE, or a text file whose first line
  says "written by matsound".
Anything else in the way is left as it is, with one line saying so. Links are never followed for writing.

Every write goes through `atomic_write` (a file: written beside its place, then renamed over it) or
`atomic_folder` (a folder: staged beside its place, then renamed over it), each checking `check_out` before
the work and again after it. This module sits at the bottom of the project: it imports nothing of it.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile
import wave

import torch


class DataError(Exception):
    """A problem the user can cause (their data, a flag, a file in the way), worth one clear line (no
    traceback). Defined here, at the bottom, so that every module can raise it; `data.DataError` is this."""


SIGNATURE = "matsound"
MANIFEST = ".matsound-manifest.json"  # in every folder the project writes: the files it wrote there
PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder above this one
OUTPUT_FOLDERS = ("runs", "data", "teaching-runs", "runs-gpu")  # the project's own ignored output folders


def read_manifest(folder):
    """The relative paths (with '/') a folder's manifest names; None without a readable manifest of ours."""
    path = os.path.join(folder, MANIFEST)
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("written_by") != SIGNATURE:
        return None
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return None
    return set(files)


def files_in(folder):
    """Every entry below `folder` that is not a folder (links included), as relative paths with '/'."""
    found = []
    for root, dirs, names in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]  # os.walk lists them as folders
        for name in names + links:
            found.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return found


def not_ours_in_folder(folder):
    """None when `folder` is ours (a real folder whose manifest names all it holds), else what is amiss."""
    if os.path.islink(folder):
        return f"{folder} is a link"
    if not os.path.isdir(folder):
        return f"{folder} is a file, not a folder"
    named = read_manifest(folder)
    if named is None:
        return f"{folder} has no {MANIFEST} (the mark of a folder this project wrote)"
    for name in files_in(folder):
        path = os.path.join(folder, name)
        if name != MANIFEST and (name not in named or os.path.islink(path)):
            return f"{path} was not written by this project"
    return None


def marked(path):
    """Whether the regular file at `path` carries the project's mark in its own content."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):  # torch.save: ours if it holds a dataset dict of this project
        try:
            d = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            return False
        return isinstance(d, dict) and "format_version" in d and "source" in d
    if head.startswith(b"{"):
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and str(obj.get("written_by", "")).startswith(SIGNATURE)
    with open(path, "rb") as f:
        first_line = f.readline(200)
    return f"written by {SIGNATURE}".encode() in first_line


def owned(path):
    """Whether the existing file at `path` is ours (see the rule above); a link or a folder never is."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    named = read_manifest(os.path.dirname(os.path.abspath(path)))
    return (named is not None and os.path.basename(path) in named) or marked(path)


def check_out(path, folder=False):
    """Raise DataError unless `path` may be written: nothing there, or ours (`folder`: a folder of ours), in a
    folder we can write in. Programs call it before their work, and every write does again."""
    if not path:
        raise DataError("--out is empty: give a file or folder name")
    if os.path.lexists(path):
        if folder:
            problem = not_ours_in_folder(path)
        elif os.path.islink(path) or not os.path.isfile(path):
            problem = f"{path} is {'a link' if os.path.islink(path) else 'not a regular file'}"
        elif not owned(path):
            problem = f"{path} was not written by this project"
        else:
            problem = None
        if problem:
            raise DataError(f"{problem}: left as it is; move it away or choose another --out")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise DataError(f"{parent} is not a folder: choose another --out")
    try:  # a folder we can write in?
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".tmp-"))
    except OSError as e:
        raise DataError(f"cannot write in {parent} ({e.strerror}): choose another --out") from None


def check_outside_project(path, allowed=OUTPUT_FOLDERS):
    """Raise DataError when `path`, links resolved, lies inside the project's sources rather than outside them
    or under one of its own output folders (`allowed`): a copy of the project must not land inside it."""
    real = os.path.realpath(path)
    if real != PROJECT and not real.startswith(PROJECT + os.sep):
        return
    inside = os.path.relpath(real, PROJECT)
    if inside.split(os.sep)[0] not in allowed:
        raise DataError(
            f"{path} lies inside the project's sources ({inside if inside != '.' else 'its top folder'}): "
            f"choose a folder outside the project, or under {allowed[0]}/"
        )


def atomic_write(path, write):
    """Every file the project writes: `write(f)` on a temporary file beside `path` (bytes), renamed to `path`,
    so none is ever half-written; an existing file is replaced only when it is ours (`owned`)."""
    check_out(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); what the project writes is for every reader
        check_out(path)  # still nothing there, or ours, now that the work is done
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_save(obj, path):
    """torch.save through atomic_write."""
    atomic_write(path, lambda f: torch.save(obj, f))


def write_json(obj, path):
    """JSON through atomic_write: never a half-written metrics.json."""
    text = json.dumps(obj, indent=1) + "\n"  # fails here, before any file is made, on what JSON cannot hold
    atomic_write(path, lambda f: f.write(text.encode()))


def save_png(fig, path):
    """Write a matplotlib figure as a PNG through atomic_write (never a half-written PNG), then close it."""
    try:  # bbox "tight": whatever sticks out of the axes (long tick labels, a legend below) is kept, not cut
        atomic_write(
            path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
        )
    finally:
        import matplotlib.pyplot as plt  # here: only what draws a figure needs matplotlib

        plt.close(fig)


def write_wav(clip, sample_rate, path):
    """(N,) int16 clip -> mono 16-bit PCM WAV (little-endian samples)."""

    def write(f):
        with wave.open(f, "wb") as w:
            w.setparams((1, 2, sample_rate, 0, "NONE", "not compressed"))
            w.writeframes(clip.cpu().numpy().astype("<i2").tobytes())

    atomic_write(path, write)


def write_manifest(folder, program):
    """Name every file now in `folder` in its MANIFEST: the proof that this project wrote them."""
    files = sorted(name for name in files_in(folder) if name != MANIFEST)
    manifest = {"written_by": SIGNATURE, "program": program, "files": files}
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def remove_ours(folder):
    """Delete what `folder`'s manifest names, then the folders left empty; whatever else is there stays.
    Returns what stayed."""
    named = read_manifest(folder) or set()
    for name in sorted(named) + [MANIFEST]:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
    for root, dirs, _ in os.walk(folder, topdown=False):
        for d in dirs:
            path = os.path.join(root, d)
            if not os.path.islink(path) and not os.listdir(path):
                os.rmdir(path)
    left = files_in(folder)
    if not left:
        os.rmdir(folder)
    return left


@contextlib.contextmanager
def atomic_folder(path, program=None):
    """`with atomic_folder(path) as folder:` the files go into a new staging `folder` beside `path`; when the
    block ends without error, MANIFEST names them and the folder replaces `path` (nothing there, or a folder
    of ours); after an error or Ctrl-C, the staging folder is removed and `path` is as it was."""
    program = program or os.path.basename(sys.argv[0]) or "python"
    check_out(path, folder=True)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(dir=parent, prefix=".tmp-")  # a fresh name: never anybody else's folder
    hold = None  # where the earlier folder waits while the new one moves in
    try:
        yield folder
        write_manifest(folder, program)
        os.chmod(folder, 0o755)  # mkdtemp makes it private (0700)
        if os.path.lexists(path):
            check_out(path, folder=True)  # still ours, now that the work is done
            hold = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
            os.rename(path, os.path.join(hold, "earlier"))
        os.rename(folder, path)
    except BaseException:
        if hold and os.path.lexists(os.path.join(hold, "earlier")) and not os.path.lexists(path):
            os.rename(os.path.join(hold, "earlier"), path)  # stopped between the two renames: it goes back
        if hold:
            os.rmdir(hold)
        shutil.rmtree(folder, ignore_errors=True)  # the staging folder: made and filled by this process
        raise
    if hold:
        left = remove_ours(os.path.join(hold, "earlier"))
        if left:
            print(
                f"note: {hold}/earlier keeps {len(left)} file(s) that appeared in {path} while it was written"
            )
        else:
            os.rmdir(hold)
