"""The one error base class of the library.

Every failure a user can cause and fix (a missing file, a bad option value, a corrupt
weights file, too little memory for the job) is raised as a :class:`StylenasError` subclass
whose message is one line saying what was wrong and what to do; the command line turns it
into ``error: <message>`` and a non-zero exit, in one place. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class StylenasError(ValueError):
    """A problem with what was asked for; ``str(err)`` is one line for the user."""


class OutOfMemory(StylenasError):
    """A job that does not fit in the memory of its device (estimated, or the allocator
    failed); the message says which option makes it fit."""


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` is an allocator failure: CUDA out of memory, CPU ``can't allocate
    memory`` / ``not enough memory``, or Python's ``MemoryError``."""
    if isinstance(err, (MemoryError, OutOfMemory)):
        return True
    text = str(err).lower()
    return (
        type(err).__name__ == "OutOfMemoryError"  # torch.OutOfMemoryError (CUDA)
        or "out of memory" in text
        or "can't allocate memory" in text
        or "not enough memory" in text
    )
