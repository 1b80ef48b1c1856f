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
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .errors import StylenasError

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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp(dest: Path, suffix: str) -> Path:
    """A new empty hidden temp file beside ``dest`` whose name carries this process's id
    (``.<stem>.<pid>.<random><suffix>``), so a later run can tell a dead run's leftovers
    (:func:`remove_stale_temps`) from the files of a run still going."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{dest.stem}.{os.getpid()}.", suffix=suffix, dir=dest.parent
    )
    os.close(fd)
    return Path(tmp)


def remove_stale_temps(dest: Path) -> list[Path]:
    """Remove the temp files a killed run left beside ``dest`` (those of :func:`make_temp`
    whose process no longer exists); returns what was removed."""
    removed = []
    for tmp in dest.parent.glob(f".{glob.escape(dest.stem)}.*.tmp"):
        pid = tmp.name[len(dest.stem) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
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
