"""Reading, checking and shaping audio: every waveform the model sees goes through here.

A clip reaches the model as float32 mono at `Config.sample_rate`, with its DC removed and
its RMS level fixed (see `normalize`), so neither the sample format, the channel count nor
the loudness of a recording can tell real from fake.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from lcnn.errors import AudioError

TARGET_RMS = 0.1  # -20 dBFS: loud enough for int16 caching, quiet enough to rarely clip
SILENCE_PEAK = 1e-4  # below this peak (after removing DC) a file holds no usable signal

# libsndfile messages that mean "this is not audio we can decode" rather than "damaged audio".
_UNKNOWN_FORMAT = ("format not recognised", "unimplemented format")


def _libsndfile_reason(error: Exception) -> str:
    """Turn a libsndfile error into a reason a user can act on."""
    message = re.sub(r"^Error opening (?:'.*?'|<.*?>):\s*", "", str(error)).strip()
    if any(key in message.lower() for key in _UNKNOWN_FORMAT):
        return f"not an audio file, or a format soundfile cannot read ({message})"
    return f"corrupt or truncated audio ({message})"


def _riff_data_shortfall(path: Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file, return (declared, present) data bytes if the data chunk is cut.

    libsndfile silently reads what is there when a WAV file is cut short, so a truncated
    download would otherwise pass as a shorter clip.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                present = size - offset - 8
                # 0 and 0xFFFFFFFF mark streamed WAVs whose size was never filled in.
                if chunk_size in (0, 0xFFFFFFFF) or chunk_size <= present:
                    return None
                return chunk_size, present
            offset += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
    return None


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG, MP3, ...) as float32 samples and its sample rate.

    Returns [frames] for mono and [frames, channels] otherwise, as soundfile does.
    Raises AudioError naming the file when it is missing, empty, not audio or damaged.
    """
    path = Path(path)
    try:
        return _read_checked(path)
    except OSError as error:  # permissions, I/O errors, a file that vanished meanwhile
        raise AudioError(path, f"cannot read ({error.strerror or error})", os_error=True) \
            from None


def _read_checked(path: Path) -> tuple[np.ndarray, int]:
    """read_audio without the OSError handling."""
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        # opened here, not by libsndfile: an unreadable file is then an OSError rather than
        # "System error.", and names that are not UTF-8 open too
        with open(path, "rb") as handle, sf.SoundFile(handle) as f:
            declared, rate = f.frames, f.samplerate
            data = f.read(dtype="float32")
    except sf.SoundFileError as error:
        raise AudioError(path, _libsndfile_reason(error)) from None
    except (ValueError, EOFError) as error:
        raise AudioError(path, f"cannot read audio ({error})") from None
    if len(data) < declared:
        raise AudioError(
            path, f"truncated: header says {declared} frames, only {len(data)} could be read"
        )
    shortfall = _riff_data_shortfall(path)
    if shortfall is not None:
        raise AudioError(
            path, f"truncated WAV: header says {shortfall[0]} data bytes, file has {shortfall[1]}"
        )
    return data, rate


def normalize(x: np.ndarray) -> np.ndarray:
    """Remove DC, scale to TARGET_RMS (-20 dBFS) and clip to [-1, 1].

    Loudness then carries no information about the class. A signal with no energy left
    after removing DC is returned as zeros (`load_audio` rejects such files first).
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean() if x.size else x
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    if rms == 0.0:
        return np.zeros(x.shape, dtype=np.float32)
    return np.clip(x * (TARGET_RMS / rms), -1.0, 1.0).astype(np.float32)


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read a file as the model wants it: mono, `sample_rate` Hz, checked, normalised, float32.

    Channels are averaged; other rates are resampled with soxr (high quality). Raises
    AudioError for unreadable files, zero samples, NaN/inf samples and all-silent files.
    """
    data, rate = read_audio(path)
    if data.size == 0:
        raise AudioError(path, "no samples (zero-length audio)")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "contains NaN or infinite samples")
    x = data.mean(axis=1) if data.ndim == 2 else data
    if rate != sample_rate:
        x = soxr.resample(x, rate, sample_rate, quality="HQ")
    if x.size == 0:
        raise AudioError(path, f"too short to resample from {rate} Hz to {sample_rate} Hz")
    peak = float(np.max(np.abs(x - x.mean())))
    if peak < SILENCE_PEAK:
        raise AudioError(path, f"all silence (peak {peak:.1e} < {SILENCE_PEAK:.0e})")
    return normalize(x)


def fix_length(
    x: np.ndarray, n: int, mode: str = "center", rng: np.random.Generator | None = None
) -> np.ndarray:
    """Crop or zero-pad a 1-D signal to exactly n samples.

    Padding always appends zeros at the end, whatever the mode, so a short clip starts at
    sample 0 in training, evaluation and scoring alike. The mode only chooses where a long
    signal is cropped: "center" (evaluation), "start", or "random" (training; uses `rng`).
    """
    if mode not in ("center", "start", "random"):
        raise ValueError(f"fix_length: mode must be 'center', 'start' or 'random', not {mode!r}")
    if n <= 0:
        raise ValueError(f"fix_length: n must be positive, not {n}")
    x = np.asarray(x)
    if len(x) < n:
        return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])
    extra = len(x) - n
    if mode == "center":
        start = extra // 2
    elif mode == "start":
        start = 0
    else:
        start = int((rng or np.random.default_rng()).integers(0, extra + 1))
    return x[start : start + n]


def sliding_windows(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    """Cut a 1-D signal into windows of n samples every `hop` samples: an array [k, n].

    The last window is aligned to the end of the signal so no audio is dropped (it may
    overlap its neighbour more than the others). A signal shorter than n gives one window,
    zero-padded at the end.
    """
    if n <= 0 or hop <= 0:
        raise ValueError(f"sliding_windows: n and hop must be positive, not n={n}, hop={hop}")
    x = np.asarray(x)
    if len(x) <= n:
        return fix_length(x, n)[None, :]
    return np.stack([x[s : s + n] for s in window_starts(len(x), n, hop)])


def window_starts(length: int, n: int, hop: int) -> list[int]:
    """Where sliding_windows' windows start in a signal of `length` >= n samples."""
    starts = list(range(0, length - n + 1, hop))
    if starts[-1] != length - n:
        starts.append(length - n)
    return starts
