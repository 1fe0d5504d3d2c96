"""Errors a user can cause and fix. The command line prints them as one line, no stack trace."""

from __future__ import annotations

from pathlib import Path

BAD_FILES_SHOWN = 10  # bad files listed by name in BadFilesError


class LcnnError(Exception):
    """Base class for user-facing errors (bad file, wrong folder, missing model, bad flag)."""


class AudioError(LcnnError):
    """A file that cannot be used as audio. Names the file and the reason."""

    def __init__(self, path: object, reason: str, os_error: bool = False):
        self.path = str(path)
        self.reason = reason
        # True when the file could not be read at all (permissions, I/O): not a verdict on
        # the audio, so it must not be remembered as one
        self.os_error = os_error
        super().__init__(f"{self.path}: {reason}")


class LayoutError(LcnnError):
    """A dataset folder that is not in the expected <root>/<split>/{real,fake}/ layout."""


class ConfigError(LcnnError, ValueError):
    """A setting that cannot work: a Config field out of range, or a layer argument."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field  # the Config field at fault, when there is one
        super().__init__(message)


class RunError(LcnnError):
    """A run folder that is missing or incomplete."""


class DivergedError(LcnnError):
    """Training produced NaN or infinite outputs; the run folder keeps the last good epoch."""


class BadFilesError(LcnnError):
    """Some files of a split could not be decoded. `bad` holds (path, reason) pairs."""

    def __init__(self, bad: list[tuple[Path, str]], where: str, hint: str | None = None):
        self.bad = bad
        lines = [f"{len(bad)} bad audio file(s) in {where}:"]
        lines += [f"  {path}: {reason}" for path, reason in bad[:BAD_FILES_SHOWN]]
        if len(bad) > BAD_FILES_SHOWN:
            lines.append(f"  ... and {len(bad) - BAD_FILES_SHOWN} more")
        lines.append(
            hint or "Fix or remove them, or pass --skip_bad (skip_bad=True) to leave them out."
        )
        super().__init__("\n".join(lines))


class ExportError(LcnnError):
    """A model that cannot be exported, or a .tflite file that cannot be used."""
