"""Writing files safely, for every program of the project: nothing half-written, and nothing replaced or
deleted that the project cannot prove it wrote.

The rule, in full. Anything in the way of a write is replaced only when it is one of these:
- A folder whose MANIFEST (a regular file in it) was written by the same program and names only relative
  paths of plain names inside the folder (no '..', no absolute path), each with its size and sha256; and the
  folder holds exactly those files with those contents, in the folders their names imply: no other entry,
  no link, nothing unreadable, nothing write-protected.
- A single regular file whose own content carries the very mark the file about to replace it carries: a
  JSON object or a dataset file (a torch dict) whose "written_by" is "matsound PROGRAM", or a text file whose
  first line is "<!-- written by matsound: PROGRAM -->", with the same PROGRAM, a .py file of the project
  (e.g. "study/run.py"; a dataset file's is always "data.py", whichever program builds it).
Everything else (a link, a device, a folder with an extra, changed or unreadable file, a file without the
mark, a file of ours of another kind) is left as it is, with one line saying so. Links are never followed.

Every write goes through `atomic_write` (a file: written beside its place, then renamed over it) or
`atomic_folder` (a folder: staged beside its place, then renamed over it), each checking `check_out` before
the work and again after it. One writer at a time: what `check_out` first found at a path must still be
there when the program writes it, else another program wrote it meanwhile and this one is refused. SIGTERM
ends a program as Ctrl-C does, and a swap or a clean-up, once begun, is not interrupted half way.
This module sits at the bottom of the project: it imports nothing of it.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import wave

import torch


class DataError(Exception):
    """A problem the user can cause (their data, a flag, a file in the way), worth one clear line (no
    traceback). Defined here, at the bottom, so that every module can raise it; `data.DataError` is this."""


SIGNATURE = "matsound"
MANIFEST = ".matsound-manifest.json"  # in every folder the project writes: the files it wrote there
PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder above this one
OUTPUT_FOLDERS = ("runs", "data", "teaching-runs", "runs-gpu")  # the project's own ignored output folders
CLAIMED = {}  # path -> what check_out first found there (its state), until this program has written it


def interrupt(signum, frame):
    """SIGTERM's handler: the KeyboardInterrupt of Ctrl-C, so that every program ends the same way on both."""
    raise KeyboardInterrupt


if threading.current_thread() is threading.main_thread():  # every program of the project imports this module
    signal.signal(signal.SIGTERM, interrupt)


@contextlib.contextmanager
def uninterrupted():
    """Ctrl-C and SIGTERM held back until the block ends: a swap or a clean-up is never left half done."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def state(path):
    """What is at `path` now, to compare with later: None for nothing, else its inode and change time."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_ctime_ns


def program_name():
    """The running program as the rule names it: its path inside the project ("tt_agg.py", "study/run.py"),
    or its file name when it runs from elsewhere."""
    path = os.path.abspath(sys.argv[0] or "python")
    if path.startswith(PROJECT + os.sep):
        return os.path.relpath(path, PROJECT).replace(os.sep, "/")
    return os.path.basename(path)


def plain(name):
    """Whether `name` is a relative path of plain names ('metrics.json', 'top5/1-wood.wav')."""
    parts = name.split("/")
    return (
        all(p not in ("", ".", "..") and "\\" not in p and "\0" not in p for p in parts) and name != MANIFEST
    )


def sha256(path):
    """The sha256 of the file at `path`, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder, program=None):
    """{relative path: {"size", "sha256"}} of each file `folder`'s MANIFEST records (and {'sub/': None} of
    each folder), when it was written by `program` (default: this one) and names only plain paths; None
    otherwise."""
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
    if manifest.get("program") != (program or program_name()):
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(n, str) and plain(n) for n in files):
        return None
    for record in files.values():
        if not isinstance(record, dict) or set(record) != {"size", "sha256"}:
            return None
    folders = manifest.get("folders")
    if not isinstance(folders, list) or not all(isinstance(n, str) and plain(n) for n in folders):
        return None
    return {**files, **dict.fromkeys(f + "/" for f in folders)}  # a folder: its name and '/', no record


def entries(folder):
    """(entries, problem): every file below `folder` as a relative path with '/' ('top5/1-wood.wav'), every
    folder as its path and '/' ('top5/'), and the first entry that is not a regular file or a real, readable,
    writable folder (a link, a device, a locked folder), or None."""
    found = []
    for root, dirs, names in os.walk(folder, onerror=lambda e: found.append(None)):
        for name in dirs + names:
            path = os.path.join(root, name)
            kind = "a link" if os.path.islink(path) else None
            if kind is None and name in dirs and not os.access(path, os.R_OK | os.W_OK | os.X_OK):
                kind = "unreadable or write-protected"
            if kind is None and name in names and not os.path.isfile(path):
                kind = "not a regular file"
            if kind:
                return found, f"{path} is {kind}"
            found.append(os.path.relpath(path, folder).replace(os.sep, "/") + ("/" if name in dirs else ""))
    if None in found:
        return found, f"a folder inside {folder} cannot be read"
    return found, None


def files_in(folder):
    """Every file below `folder`, as relative paths with '/'."""
    return [name for name in entries(folder)[0] if name and not name.endswith("/")]


def not_ours_in_folder(folder, program=None):
    """None when `folder` is ours by the rule above, else what is amiss."""
    if os.path.islink(folder):
        return f"{folder} is a link"
    if not os.path.isdir(folder):
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        return f"{folder} is unreadable or write-protected"
    named = read_manifest(folder, program)
    if named is None:
        return f"{folder} has no {MANIFEST} written by {program or program_name()} (the mark of its folders)"
    found, problem = entries(folder)
    if problem:
        return problem
    for name in sorted(set(found) - {MANIFEST} - set(named)):
        return f"{os.path.join(folder, name.rstrip('/'))} was not written by this project"
    for name, record in sorted(named.items()):
        path = os.path.join(folder, name)
        if name not in found:
            return f"{path}, named in {MANIFEST}, is missing"
        if record and (os.path.getsize(path) != record["size"] or sha256(path) != record["sha256"]):
            return f"{path} has changed since this project wrote it"
    return None


def writer_of(path):
    """The PROGRAM that the regular file at `path` names as its writer in its own content (the rule above), or
    None when it names none."""
    with open(path, "rb") as f:
        head = f.read(4)
    writer = None
    if head.startswith(b"PK\x03\x04"):  # torch.save: a dataset file
        try:
            d = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            return None
        writer = d.get("written_by") if isinstance(d, dict) else None
    elif head.startswith(b"{"):
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, ValueError):
            return None
        writer = obj.get("written_by") if isinstance(obj, dict) else None
    else:
        with open(path, "rb") as f:
            line = f.readline(300).rstrip(b"\n").decode("utf-8", "replace")
        if line.startswith("<!-- written by ") and line.endswith(" -->"):
            writer = line[len("<!-- written by ") : -len(" -->")].replace(": ", " ", 1)
    return program_of(writer)


def program_of(writer):
    """ "matsound PROGRAM" -> PROGRAM when it is a .py file of the project, else None."""
    if not isinstance(writer, str) or not writer.startswith(SIGNATURE + " "):
        return None
    program = writer[len(SIGNATURE) + 1 :]
    if program.endswith(".py") and plain(program) and os.path.isfile(os.path.join(PROJECT, program)):
        return program
    return None


def owned(path, program=None):
    """Whether the existing file at `path` is ours, marked as written by `program` (default: this one; see
    the rule above); a link or a folder never is."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    return writer_of(path) == (program or program_name())


def check_out(path, folder=False, program=None):
    """Raise DataError unless `path` may be written: nothing there, or ours, written by `program` (default:
    this one; `folder`: a folder of ours), in a folder we can write in. Programs call it before their work,
    and every write does again."""
    if not path:
        raise DataError("--out is empty: give a file or folder name")
    check_name(path)
    if os.path.lexists(path):
        if folder:
            problem = not_ours_in_folder(path, program)
        elif os.path.islink(path) or not os.path.isfile(path):
            problem = f"{path} is {'a link' if os.path.islink(path) else 'not a regular file'}"
        elif writer_of(path) is None:
            problem = f"{path} was not written by this project"
        elif not owned(path, program):
            problem = f"{path} was written by {writer_of(path)}, not {program or program_name()}"
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
    key = os.path.abspath(path)
    if CLAIMED.setdefault(key, state(path)) != state(path):
        raise DataError(f"{path} was written by another program while this one ran: left as it is; run again")


def claim(path, folder=False, program=None):
    """check_out at a program's start: what is at `path` now must still be there when the program writes
    it."""
    CLAIMED.pop(os.path.abspath(path), None)
    check_out(path, folder, program)


def check_name(path):
    """Raise DataError unless `path` can be created: no trailing slash, UTF-8, no name over 255 bytes."""
    if path.endswith(("/", os.sep)):
        raise DataError(f"{path} ends in '/': name the file or folder without it")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{path!r} is not valid UTF-8: choose another --out") from None
    if max(len(name) for name in encoded.split(b"/")) > 255:
        raise DataError(f"a name in {path[:60]}... is over 255 bytes, the most a file system takes") from None


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


def atomic_write(path, write, program=None):
    """Every file the project writes: `write(f)` on a temporary file beside `path` (bytes), renamed to `path`,
    so none is ever half-written; an existing file is replaced only when it is ours, marked as written by
    `program` (default: this one), the mark the new file carries."""
    check_out(path, program=program)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); what the project writes is for every reader
        with uninterrupted():
            check_out(path, program=program)  # still nothing there, or ours, now that the work is done
            os.replace(tmp, path)
            CLAIMED.pop(os.path.abspath(path), None)  # written: a later write claims it anew
    except BaseException:
        with uninterrupted():
            if os.path.lexists(tmp):
                os.unlink(tmp)
        raise


def atomic_save(obj, path):
    """torch.save through atomic_write; a dataset replaces only a dataset (the program its mark names)."""
    atomic_write(path, lambda f: torch.save(obj, f), program=program_of(written_by(obj)))


def write_json(obj, path):
    """JSON through atomic_write: never a half-written metrics.json."""
    text = json.dumps(obj, indent=1) + "\n"  # fails here, before any file is made, on what JSON cannot hold
    atomic_write(path, lambda f: f.write(text.encode()), program=program_of(written_by(obj)))


def written_by(obj):
    """The "written_by" of a dict about to be written, else None."""
    return obj.get("written_by") if isinstance(obj, dict) else None


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
    """Record every file now in `folder`, with its size and sha256, in its MANIFEST: the proof that `program`
    wrote them."""
    files = {
        name: {
            "size": os.path.getsize(os.path.join(folder, name)),
            "sha256": sha256(os.path.join(folder, name)),
        }
        for name in sorted(files_in(folder))
        if name != MANIFEST
    }
    folders = sorted(name.rstrip("/") for name in entries(folder)[0] if name.endswith("/"))
    manifest = {"written_by": SIGNATURE, "program": program, "files": files, "folders": folders}
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def remove_ours(folder, program):
    """Delete what `folder`'s manifest names, then the folders left empty; whatever else is there stays.
    Returns what stayed."""
    named = read_manifest(folder, program) or {}
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
    program = program or program_name()
    check_out(path, folder=True, program=program)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(dir=parent, prefix=".tmp-")  # a fresh name: never anybody else's folder
    hold = None  # where the earlier folder waits while the new one moves in
    try:
        yield folder
        write_manifest(folder, program)
        os.chmod(folder, 0o755)  # mkdtemp makes it private (0700)
        with uninterrupted():  # the swap: both renames, or neither
            check_out(path, folder=True, program=program)  # still ours, now that the work is done
            if os.path.lexists(path):
                hold = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
                os.rename(path, os.path.join(hold, "earlier"))
            os.rename(folder, path)
            CLAIMED.pop(os.path.abspath(path), None)  # written: a later write claims it anew
    except BaseException:
        with uninterrupted():
            if hold and os.path.lexists(os.path.join(hold, "earlier")) and not os.path.lexists(path):
                os.rename(os.path.join(hold, "earlier"), path)  # stopped between the renames: it goes back
            if hold:
                os.rmdir(hold)
            shutil.rmtree(folder, ignore_errors=True)  # the staging folder: made and filled by this process
        raise
    if hold:
        with uninterrupted():
            left = remove_ours(os.path.join(hold, "earlier"), program)
            if not left:
                os.rmdir(hold)
        if left:
            print(
                f"note: {hold}/earlier keeps {len(left)} file(s) that appeared in {path} while it was written"
            )
