"""Output files: where results go (one planner for photos and videos), atomic writes, JSON.

Every result file is written to a temp file beside its destination and renamed into place,
so a destination is either complete or untouched.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from .errors import StylenasError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None

STYLIZED_SUFFIX = "_stylized"


class OutputError(StylenasError):
    """An output location that cannot be used."""


def default_name(source: Path, suffix: str | None = None) -> str:
    """``<stem>_stylized<suffix>`` (the source's own suffix by default, else ``.png``)."""
    return f"{source.stem}{STYLIZED_SUFFIX}{suffix or source.suffix or '.png'}"


def plan_outputs(
    sources: Sequence[Path],
    output: str | Path | None,
    suffixes: Iterable[str],
    kind: str = "an image",
    subdirs: Sequence[Path] | None = None,
) -> list[Path]:
    """Output path for each source: ``<stem>_stylized.<ext>`` beside it, inside ``output``
    when that is a directory (or several sources are given, or it ends with a slash), else
    ``output`` itself. ``suffixes``: the extensions allowed for ``kind`` of output;
    ``subdirs``: each source's folder below the output directory (a mirrored tree).

    Raises :class:`OutputError` for a file name where a directory is needed, a wrong
    extension, two sources that would write one file, or an output that is a source."""
    suffixes = sorted({s.lower() for s in suffixes})
    # Check the slash on the string: Path("out/") drops it.
    slash = isinstance(output, str) and output.endswith(("/", "\\"))
    out = Path(output) if output is not None else None
    if out is not None:
        check_name(out)  # before any look at it: the system refuses a longer name outright
    as_dir = out is not None and (out.is_dir() or len(sources) > 1 or slash)
    if as_dir and out.suffix.lower() in suffixes and not out.is_dir():
        raise OutputError(f"{out}: {len(sources)} inputs need an output directory, not a file name")
    plans = []
    for i, src in enumerate(sources):
        if out is None:
            dest = src.with_name(default_name(src))
        elif as_dir:
            dest = out / (subdirs[i] if subdirs else Path(".")) / default_name(src)
        else:
            dest = out
        if dest.suffix.lower() not in suffixes:
            raise OutputError(f"{dest}: output needs {kind} extension ({', '.join(suffixes)})")
        check_name(dest)
        plans.append(dest)
    if len(set(plans)) != len(plans):
        raise OutputError("two inputs would write the same output file: give distinct names")
    inputs = {Path(s).resolve() for s in sources}
    for dest in plans:
        if dest.resolve() in inputs:
            raise OutputError(f"{dest}: output would replace an input; choose another -o")
    return plans


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check a file can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".stylenas.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise OutputError(
            f"{folder}: cannot write the output there ({err.strerror or err})"
        ) from None


def check_folders_writable(folders: Iterable[Path]) -> None:
    """Check, before any work, that a file can be written in each folder (or, for one that
    does not exist yet, in its nearest existing parent, where it will be created); nothing
    is created. Raises :class:`OutputError` naming the first that cannot."""
    seen: set[Path] = set()
    for folder in folders:
        existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
        if existing in seen:
            continue
        seen.add(existing)
        if not existing.is_dir():
            raise OutputError(f"{existing}: is a file, so no output folder can be made there")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{TEMP_MARK}check.", suffix=".tmp", dir=existing)
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            raise OutputError(
                f"{folder}: cannot write the output there ({err.strerror or err}); choose "
                "another -o"
            ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_MARK = "stylenas_"  # in every temp name this tool makes: the cleanup removes no other
_TEMP_RESERVE = 48  # bytes of a temp name besides the stem and the output's suffix


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or its nearest existing
    parent) takes."""
    for parent in (folder, *folder.parents):
        try:
            return os.pathconf(parent, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return 255


def check_name(dest: Path) -> None:
    """Refuse an output whose file name the file system cannot hold (before any work)."""
    size, limit = len(os.fsencode(dest.name)), name_max(dest.parent)
    if size > limit:
        raise OutputError(
            f"{dest}: the file name is {size} bytes, over this file system's limit of {limit}; "
            "choose a shorter name"
        )


def _temp_stem(dest: Path) -> str:
    """``dest``'s stem cut (on a character boundary) so that every temp name of
    :func:`make_temp` stays within the file system's name limit."""
    budget = name_max(dest.parent) - _TEMP_RESERVE - len(os.fsencode(dest.suffix))
    stem = dest.stem
    while len(os.fsencode(stem)) > max(1, budget):
        stem = stem[:-1]
    return stem


def make_temp(dest: Path, suffix: str) -> Path:
    """A new empty hidden temp file beside ``dest``, named
    ``.<stem>.<pid>.stylenas_<random><suffix>`` (the stem shortened to fit the name limit):
    the marker tells this tool's temp files from a user's, the process id a dead run's
    leftovers (:func:`remove_stale_temps`) from the files of a run still going."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{_temp_stem(dest)}.{os.getpid()}.{TEMP_MARK}", suffix=suffix, dir=dest.parent
    )
    os.close(fd)
    return Path(tmp)


def remove_stale_temps(dest: Path) -> list[Path]:
    """Remove the temp files a killed run left beside ``dest`` (those of :func:`make_temp`
    whose process no longer exists); returns what was removed."""
    stem = _temp_stem(dest)
    ours = re.compile(rf"\.{re.escape(stem)}\.(\d+)\.{TEMP_MARK}[a-z0-9_]{{8}}\S*\.tmp")
    removed = []
    for tmp in dest.parent.glob(f".{glob.escape(stem)}.*.tmp"):
        found = ours.fullmatch(tmp.name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def atomic_write(dest: str | Path, write: Callable[[Path], None], overwrite: bool = True) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``dest``, flush it to disk, then move it into
    place; the temp file is removed on any error, so ``dest`` is either complete or untouched.

    ``overwrite=False``: the move itself refuses an existing ``dest`` (a hard link, atomic),
    so two runs writing one output never silently replace each other's file."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest)
    tmp_path = make_temp(dest, dest.suffix + ".tmp")
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; use the usual mode
        _fsync(tmp_path)
        if overwrite:
            os.replace(tmp_path, dest)
        else:
            _link_new(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return dest


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_new(tmp: Path, dest: Path) -> None:
    """Move ``tmp`` to ``dest`` only if ``dest`` does not exist, atomically."""
    try:
        os.link(tmp, dest)  # fails if dest exists, whoever created it in the meantime
    except FileExistsError:
        raise OutputError(
            f"{dest}: output exists (another run wrote it?); pass --overwrite to replace it"
        ) from None
    except OSError:  # no hard links on this filesystem: the exclusive create is the check
        try:
            os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise OutputError(
                f"{dest}: output exists (another run wrote it?); pass --overwrite to replace it"
            ) from None
        os.replace(tmp, dest)
    else:
        tmp.unlink()


LOCK_NAME = ".lock"


@contextlib.contextmanager
def exclusive_dir(folder: str | Path, what: str = "run") -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for one process: a second ``stylenas`` writing
    checkpoints or records into it would interleave them, so it raises
    :class:`OutputError` instead. The lock is an advisory ``flock`` on ``<folder>/.lock``,
    released when the block ends or the process dies; a folder this call created and left
    empty is removed. Where ``fcntl`` is missing (Windows) nothing is locked."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {folder}: {err.strerror or err}") from err
    lock = folder / LOCK_NAME
    with open(lock, "a+") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                owner = fh.read().strip()
                by = f" (pid {owner})" if owner.isdigit() else ""
                raise OutputError(
                    f"{folder} is in use by another stylenas {what}{by}: wait for it to "
                    "finish or choose another --out"
                ) from None
            fh.truncate(0)
            fh.write(str(os.getpid()))
            fh.flush()
        try:
            yield folder
        finally:
            if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                lock.unlink()
                folder.rmdir()


def jsonable(value):
    """Plain JSON types, NaN and infinities as ``None`` (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(dest: str | Path, value, indent: int | None = 2) -> Path:
    """``value`` as strict JSON, atomically."""
    text = json.dumps(jsonable(value), indent=indent)
    return atomic_write(dest, lambda tmp: tmp.write_text(text + "\n"))
