"""Errors a user can cause and fix. The command line prints them as one line, no stack trace."""

from __future__ import annotations


class LcnnError(Exception):
    """Base class for user-facing errors (bad file, wrong folder, missing model, bad flag)."""


class AudioError(LcnnError):
    """A file that cannot be used as audio. Names the file and the reason."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LayoutError(LcnnError):
    """A dataset folder that is not in the expected <root>/<split>/{real,fake}/ layout."""
