"""Output files: where results go (one planner for photos and videos), atomic writes, JSON.

Every result file is written to a temp file beside its destination and renamed into place,
so a destination is either complete or untouched.
"""

from __future__ import annotations

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
) -> list[Path]:
    """Output path for each source: ``<stem>_stylized.<ext>`` beside it, inside ``output``
    when that is a directory (or several sources are given, or it ends with a slash), else
    ``output`` itself. ``suffixes``: the extensions allowed for ``kind`` of output.

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
    for src in sources:
        if out is None:
            dest = src.with_name(default_name(src))
        elif as_dir:
            dest = out / default_name(src)
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


def atomic_write(dest: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``dest`` then rename it into place; the temp
    file is removed on any error, so ``dest`` is either complete or untouched."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{dest.stem}.", suffix=dest.suffix + ".tmp", dir=dest.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; use the usual mode
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return dest


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
