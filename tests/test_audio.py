"""lcnn.audio: reading every supported format, resampling, shaping, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn.audio import TARGET_RMS, fix_length, load_audio, normalize, read_audio, sliding_windows
from lcnn.errors import AudioError, LcnnError


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


# (format, subtype, suffix, tolerance of the round trip)
LOSSLESS = [
    ("WAV", "PCM_U8", "wav", 1 / 64),
    ("WAV", "PCM_16", "wav", 1e-4),
    ("WAV", "PCM_24", "wav", 1e-6),
    ("WAV", "PCM_32", "wav", 1e-6),
    ("WAV", "FLOAT", "wav", 0),
    ("WAV", "DOUBLE", "wav", 0),
    ("FLAC", "PCM_16", "flac", 1e-4),
    ("FLAC", "PCM_24", "flac", 1e-6),
]


@pytest.mark.parametrize("fmt,subtype,suffix,tol", LOSSLESS, ids=[s for _, s, _, _ in LOSSLESS])
def test_read_lossless_formats_round_trip(tmp_path, fmt, subtype, suffix, tol):
    x = tone(440, 16000)
    path = tmp_path / f"a.{suffix}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y, rate = read_audio(path)
    assert rate == 16000
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=tol)


@pytest.mark.parametrize(
    "fmt,subtype,suffix", [("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")]
)
def test_read_lossy_formats_keep_the_tone(tmp_path, fmt, subtype, suffix):
    x = tone(1000, 16000, seconds=1.0)
    path = tmp_path / f"a.{suffix}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y = load_audio(path, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) < 0.1 * len(x)  # codecs may add a little padding
    assert abs(peak_hz(y, 16000) - 1000) < 10


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = tone(440, 16000), tone(440, 16000, amp=0.1)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    data, _ = read_audio(path)
    assert data.shape == (len(left), 2)
    y = load_audio(path, 16000)
    assert y.ndim == 1 and len(y) == len(left)
    # Mixing two in-phase tones gives the same waveform shape, just rescaled.
    np.testing.assert_allclose(y, normalize((left + right) / 2), atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_the_frequency(tmp_path, rate):
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(path, tone(1000, rate, seconds=1.0), rate, subtype="PCM_16")
    y = load_audio(path, 16000)
    assert len(y) == pytest.approx(16000, abs=2)
    assert abs(peak_hz(y, 16000) - 1000) < 3


def test_normalize_sets_rms_removes_dc_and_is_idempotent():
    x = tone(300, 16000, amp=0.01) + 0.2
    y = normalize(x)
    assert y.dtype == np.float32
    assert abs(float(y.mean())) < 1e-6
    assert float(np.sqrt(np.mean(y**2))) == pytest.approx(TARGET_RMS, rel=1e-4)
    np.testing.assert_allclose(normalize(y), y, atol=1e-5)


def test_normalize_clips_to_unit_range():
    x = np.zeros(16000, dtype=np.float32)
    x[100] = 1.0  # a single click: scaling it to RMS 0.1 would push it far past 1
    y = normalize(x)
    assert float(np.max(np.abs(y))) <= 1.0


def test_load_audio_levels_loud_and_quiet_files_alike(tmp_path):
    sf.write(tmp_path / "loud.wav", tone(440, 16000, amp=0.9), 16000, subtype="PCM_16")
    sf.write(tmp_path / "quiet.wav", tone(440, 16000, amp=0.01), 16000, subtype="PCM_16")
    loud, quiet = load_audio(tmp_path / "loud.wav"), load_audio(tmp_path / "quiet.wav")
    assert np.sqrt(np.mean(loud**2)) == pytest.approx(np.sqrt(np.mean(quiet**2)), rel=1e-3)


def test_fix_length_pads_at_end_and_crops():
    x = np.arange(10, dtype=np.float32) + 1
    padded = fix_length(x, 15)
    np.testing.assert_array_equal(padded[:10], x)
    np.testing.assert_array_equal(padded[10:], 0)
    np.testing.assert_array_equal(fix_length(x, 4, "center"), [4, 5, 6, 7])
    np.testing.assert_array_equal(fix_length(x, 4, "start"), [1, 2, 3, 4])
    np.testing.assert_array_equal(fix_length(x, 10), x)


def test_fix_length_random_crop_varies_and_is_seeded():
    x = np.arange(1000, dtype=np.float32)
    starts = {fix_length(x, 100, "random", np.random.default_rng(i))[0] for i in range(20)}
    assert len(starts) > 5 and all(0 <= s <= 900 for s in starts)
    a = fix_length(x, 100, "random", np.random.default_rng(7))
    b = fix_length(x, 100, "random", np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.diff(a), 1)  # a contiguous piece of the signal


def test_fix_length_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        fix_length(np.zeros(3), 2, "middle")


@pytest.mark.parametrize("length", [1, 99, 100, 101, 250, 1000, 1001])
def test_sliding_windows_cover_the_whole_signal(length):
    x = np.arange(length, dtype=np.float32) + 1
    n, hop = 100, 40
    windows = sliding_windows(x, n, hop)
    assert windows.ndim == 2 and windows.shape[1] == n
    if length <= n:
        assert windows.shape[0] == 1
        np.testing.assert_array_equal(windows[0, :length], x)
        np.testing.assert_array_equal(windows[0, length:], 0)
    else:
        np.testing.assert_array_equal(windows[-1], x[-n:])  # last window ends at the end
        covered = np.unique(windows)
        np.testing.assert_array_equal(covered, x)  # every sample appears, nothing invented
        assert windows.shape[0] == int(np.ceil((length - n) / hop)) + 1


# ---------------------------------------------------------------- bad input


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def wav_bytes(tmp_path: Path, x: np.ndarray, subtype: str = "PCM_16") -> bytes:
    sf.write(tmp_path / "_src.wav", x, 16000, subtype=subtype)
    return (tmp_path / "_src.wav").read_bytes()


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad file and a word its error message must contain."""
    good = wav_bytes(tmp_path, tone(440, 16000))
    sf.write(tmp_path / "_src.flac", tone(440, 16000), 16000)
    flac = (tmp_path / "_src.flac").read_bytes()
    sf.write(tmp_path / "_src.mp3", tone(440, 16000, seconds=1.0), 16000, format="MP3")
    mp3 = (tmp_path / "_src.mp3").read_bytes()
    nan = tone(440, 16000)
    nan[100] = np.nan
    inf = tone(440, 16000)
    inf[5] = np.inf
    return {
        "missing": (tmp_path / "nope.wav", "not found"),
        "empty": (write_bytes(tmp_path / "empty.wav", b""), "empty file (0 bytes)"),
        "text": (write_bytes(tmp_path / "notes.wav", b"just some text\n" * 20), "not an audio"),
        "truncated_wav": (write_bytes(tmp_path / "cut.wav", good[: len(good) // 2]), "truncated"),
        "truncated_flac": (write_bytes(tmp_path / "cut.flac", flac[: len(flac) // 2]), "truncated"),
        "truncated_mp3": (write_bytes(tmp_path / "cut.mp3", mp3[: len(mp3) // 2]), "truncated"),
        "header_only": (write_bytes(tmp_path / "hdr.wav", good[:30]), "corrupt"),
        "zero_samples": (
            write_bytes(tmp_path / "zero.wav", wav_bytes(tmp_path, np.zeros(0, np.float32))),
            "no samples",
        ),
        "silence": (
            write_bytes(tmp_path / "silent.wav", wav_bytes(tmp_path, np.zeros(8000, np.float32))),
            "silence",
        ),
        "dc_only": (
            write_bytes(
                tmp_path / "dc.wav", wav_bytes(tmp_path, np.full(8000, 0.5, np.float32), "FLOAT")
            ),
            "silence",
        ),
        "nan": (write_bytes(tmp_path / "nan.wav", wav_bytes(tmp_path, nan, "FLOAT")), "NaN"),
        "inf": (write_bytes(tmp_path / "inf.wav", wav_bytes(tmp_path, inf, "FLOAT")), "infinite"),
    }


BAD_KINDS = [
    "missing", "empty", "text", "truncated_wav", "truncated_flac", "truncated_mp3",
    "header_only", "zero_samples", "silence", "dc_only", "nan", "inf",
]  # fmt: skip


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_raises_audio_error_naming_file_and_reason(tmp_path, kind):
    path, reason = bad_files(tmp_path)[kind]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    error = info.value
    assert isinstance(error, LcnnError)
    assert error.path == str(path)
    assert str(path) in str(error)
    assert reason.lower() in error.reason.lower()


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="not a file"):
        read_audio(tmp_path)
