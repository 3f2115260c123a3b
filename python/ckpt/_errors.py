"""ckpt's exceptions. The message is what the ckpt command prints after
``ckpt: error: `` (what went wrong and where: file, record, pickle offset,
config key)."""

from __future__ import annotations


class Error(Exception):
    """Base class of every error ckpt raises."""


class FormatError(Error):
    """The input is not what it claims to be: a damaged zip, a hostile or
    malformed pickle, a tensor view outside its storage."""


class IoError(Error):
    """An operating-system call failed (open, read, write, fsync, rename)."""


class UsageError(Error):
    """What was asked cannot be done: a missing key or state, a bad override,
    an output that exists without ``force=True``."""


class UnsafeGlobalError(FormatError):
    """``ckpt.load`` met a global outside the allowlist. ``globals`` lists
    every such ``module.name`` the file names; pass
    ``unsafe_globals="placeholder"`` to get inert ``ckpt.Placeholder``
    objects in their place."""

    def __init__(self, message: str, globals: list[str]):
        super().__init__(message)
        self.globals = globals


# Tracebacks name them as users spell them: ckpt.UsageError, not ckpt._errors.UsageError.
for _cls in (Error, FormatError, IoError, UsageError, UnsafeGlobalError):
    _cls.__module__ = "ckpt"
