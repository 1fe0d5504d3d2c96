"""Interactive widgets for the course notebooks: listen to clips, move a sinc filter, browse scores.

Each widget is a small class. `.widget` is what a notebook displays; the controls are public
attributes (ipywidgets), and the state the widget shows (`.current_file`, `.players`,
`.response_db`, `.current_score`, ...) is kept as plain attributes, so tests can drive the
controls and check what is shown without a browser.

    from lcnn.course.widgets import ClipPlayer
    ClipPlayer("data/demo").widget
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from IPython.display import Audio, clear_output, display
from matplotlib.figure import Figure
from scipy import signal

from lcnn import LABELS
from lcnn.audio import read_audio
from lcnn.config import Config
from lcnn.dataset import CLASSES, audio_files, class_folders, find_splits, read_metadata
from lcnn.detector.data import INT16_SCALE

ALL = "(all)"


# ------------------------------------------------------------------ helpers shared by the widgets


def matching_clip(metadata: dict[str, dict[str, str]], rel: str) -> str | None:
    """A clip of the other class saying the same words as `rel` (same `text_id`), or None.

    Prefers the very recording a vocoded fake was copied from, then the same language.
    """
    row = metadata.get(rel)
    if row is None or not row.get("text_id"):
        return None
    others = [
        other for other in metadata.values()
        if other["text_id"] == row["text_id"] and other["label"] != row["label"]
    ]  # fmt: skip
    if not others:
        return None
    others.sort(key=lambda o: (o["recording"] != row["recording"], o["lang"] != row["lang"],
                               o["file"]))  # fmt: skip
    return Path(others[0]["file"]).as_posix()


def audio_player(x: np.ndarray, sample_rate: int) -> Audio:
    """An Audio player that keeps the clip's level (no normalising), so loudness compares."""
    return Audio(np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0), rate=sample_rate,
                 normalize=False)  # fmt: skip


def spectrogram_db(x: np.ndarray, sample_rate: int, window_s: float = 0.025,
                   hop_s: float = 0.010) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Power spectrogram in dB: (times s, frequencies Hz, [freqs, times] dB re full scale)."""
    nperseg = int(round(window_s * sample_rate))
    hop = int(round(hop_s * sample_rate))
    freqs, times, power = signal.spectrogram(
        np.asarray(x, dtype=np.float64), fs=sample_rate, window="hann", nperseg=nperseg,
        noverlap=nperseg - hop, scaling="spectrum",
    )  # fmt: skip
    return times, freqs, 10 * np.log10(power + 1e-12)


def clip_figure(clips: list[tuple[str, np.ndarray]], sample_rate: int) -> Figure:
    """One column per (title, waveform): the waveform above its spectrogram (same colour scale)."""
    fig = Figure(figsize=(min(5.2 * len(clips), 12.0), 4.4), dpi=110, layout="constrained")
    axes = fig.subplots(2, len(clips), squeeze=False, sharex="col", height_ratios=[1, 1.6])
    for col, (title, x) in enumerate(clips):
        t = np.arange(len(x)) / sample_rate
        wave, spec = axes[0, col], axes[1, col]
        wave.plot(t, x, lw=0.5, color="tab:blue")
        wave.set(title=title, ylabel="amplitude", ylim=(-1, 1) if np.abs(x).max() > 0.5 else None)
        times, freqs, db = spectrogram_db(x, sample_rate)
        image = spec.pcolormesh(times, freqs / 1000, db, vmin=-100, vmax=-20, cmap="magma",
                                shading="auto", rasterized=True)  # fmt: skip
        spec.set(xlabel="time (s)", ylabel="frequency (kHz)")
    fig.colorbar(image, ax=axes[1, :].tolist(), label="dB re full scale", shrink=0.9)
    return fig


def band_edges(freqs: np.ndarray, response_db: np.ndarray, level_db: float = -3.0) -> tuple[
        float, float]:  # fmt: skip
    """Lower and upper edge of the pass band: where the response around its peak falls below
    `level_db` (dB re peak), linearly interpolated between frequency bins."""
    response_db = np.asarray(response_db) - np.max(response_db)
    peak = int(np.argmax(response_db))
    above = response_db >= level_db
    lo = peak
    while lo > 0 and above[lo - 1]:
        lo -= 1
    hi = peak
    while hi < len(freqs) - 1 and above[hi + 1]:
        hi += 1

    def crossing(inside: int, outside: int) -> float:
        if outside == inside:  # the band reaches 0 Hz or the Nyquist frequency
            return float(freqs[inside])
        a, b = response_db[inside], response_db[outside]
        frac = (a - level_db) / (a - b)
        return float(freqs[inside] + frac * (freqs[outside] - freqs[inside]))

    return crossing(lo, max(lo - 1, 0)), crossing(hi, min(hi + 1, len(freqs) - 1))


def _show(output: widgets.Output, *items) -> None:
    """Replace what `output` shows (Figures are drawn as images, strings as text)."""
    with output:
        clear_output(wait=True)
        for item in items:
            display(item)


# ------------------------------------------------------------------ ClipPlayer


class ClipPlayer:
    """Browse a dataset in the FoR layout: pick split, class, attack and file; listen and look.

    Attack families come from <data_path>/metadata.csv when there is one (the demo corpus).
    With `compare` ticked, a real recording and a fake of the same words (same `text_id`)
    play side by side. State: `files` (the file list after filtering), `current_file`,
    `shown_files` and `players` (one Audio per shown file), `figure`.
    """

    def __init__(self, data_path: str | Path, sample_rate: int | None = None):
        self.root = Path(data_path)
        self.metadata = read_metadata(self.root)
        self.sample_rate = sample_rate
        # file lists per split and class, listed once (FoR training has ~14,000 files)
        self._files = {
            split: {cls: audio_files(folder) for cls, folder in class_folders(path).items()}
            for split, path in find_splits(self.root).items()
        }
        self.split = widgets.Dropdown(options=list(self._files), description="split")
        self.label = widgets.Dropdown(options=[ALL, *CLASSES], description="class")
        self.attack = widgets.Dropdown(options=[ALL], description="attack",
                                       disabled=not self.metadata)  # fmt: skip
        self.file = widgets.Dropdown(options=[], description="file",
                                     layout=widgets.Layout(width="46em"))  # fmt: skip
        self.compare = widgets.Checkbox(value=False, description="compare real vs fake, same words",
                                        disabled=not self.metadata, indent=False)  # fmt: skip
        self.output = widgets.Output()
        self.files: list[Path] = []
        self.current_file: Path | None = None
        self.shown_files: list[Path] = []
        self.players: list[Audio] = []
        self.figure: Figure | None = None
        self.message = ""
        self._busy = False

        for control in (self.split, self.label, self.attack):
            control.observe(self._on_filter, names="value")
        self.file.observe(self._on_file, names="value")
        self.compare.observe(self._on_file, names="value")
        self._refresh_attacks()
        self._refresh_files()
        self.widget = widgets.VBox([
            widgets.HBox([self.split, self.label, self.attack]),
            widgets.HBox([self.file, self.compare]),
            self.output,
        ])  # fmt: skip

    def attack_of(self, path: Path) -> str | None:
        """The attack family of a file from metadata.csv, None if unknown."""
        row = self.metadata.get(path.relative_to(self.root).as_posix())
        return row["attack"] if row else None

    def _refresh_attacks(self) -> None:
        found = {self.attack_of(p) for paths in self._files[self.split.value].values()
                 for p in paths} - {None}  # fmt: skip
        options = [ALL, *sorted(found)]
        self._busy = True
        try:
            keep = self.attack.value if self.attack.value in options else ALL
            self.attack.options = options
            self.attack.value = keep
        finally:
            self._busy = False

    def _matches(self, path: Path) -> bool:
        return self.attack.value == ALL or self.attack_of(path) == self.attack.value

    def _refresh_files(self) -> None:
        by_class = self._files[self.split.value]
        classes = list(by_class) if self.label.value == ALL else [self.label.value]
        self.files = [p for cls in classes for p in by_class[cls] if self._matches(p)]
        self._busy = True
        try:
            self.file.options = [(p.name, p) for p in self.files]
            self.file.value = self.files[0] if self.files else None
        finally:
            self._busy = False
        self._update()

    def _on_filter(self, change) -> None:
        if self._busy:
            return
        if change["owner"] is self.split:
            self._refresh_attacks()
        self._refresh_files()

    def _on_file(self, change) -> None:
        if not self._busy:
            self._update()

    def _shown(self) -> list[Path]:
        """The file(s) to play: the chosen one, or a real and a fake of the same words."""
        if not self.compare.value:
            return [self.current_file]
        rel = self.current_file.relative_to(self.root).as_posix()
        other = matching_clip(self.metadata, rel)
        if other is None:
            self.message = f"No clip of the other class says the same words as {rel}."
            return [self.current_file]
        pair = [self.current_file, self.root / other]
        return pair if self.current_file.parent.name.lower() == "real" else pair[::-1]

    def _update(self) -> None:
        self.current_file = self.file.value
        self.message = ""
        if self.current_file is None:
            self.shown_files, self.players, self.figure = [], [], None
            self.message = "No clip matches these filters."
            _show(self.output, self.message)
            return
        self.shown_files = self._shown()
        clips = []
        self.players = []
        for path in self.shown_files:
            x, rate = read_audio(path)
            x = x.mean(axis=1) if x.ndim == 2 else x
            title = f"{path.parent.name}: {path.name}"
            attack = self.attack_of(path)
            if attack:
                title = f"{path.parent.name} ({attack}): {path.name}"
            clips.append((title[:60], x))
            self.players.append(audio_player(x, rate))
        self.figure = clip_figure(clips, rate)
        items = [widgets.HTML(f"<i>{self.message}</i>")] if self.message else []
        for (title, _), player in zip(clips, self.players, strict=True):
            items += [widgets.HTML(f"<b>{title}</b>"), player]
        _show(self.output, *items, self.figure)


# ------------------------------------------------------------------ SincExplorer


class SincExplorer:
    """One learnable sinc band-pass filter of lcnn.detector.layers.SincConv1D, moved with sliders.

    The sliders set the filter's low cut-off and band width (the layer's two parameters);
    the plots show the impulse response (the filter's taps) and the magnitude response.
    State: `taps`, `cutoffs` (low, high) in Hz as the layer computes them, `freqs` and
    `response_db` (dB re peak), `edges` (the measured -3 dB band edges).
    """

    N_FFT = 8192

    def __init__(self, sample_rate: int = 16000, kernel_size: int | None = None,
                 low_hz: float = 1000.0, band_hz: float = 500.0):  # fmt: skip
        from lcnn.detector.layers import SincConv1D

        self.sample_rate = int(sample_rate)
        kernel_size = kernel_size or Config().sinc_kernel_size
        probe = SincConv1D(1, kernel_size, sample_rate=self.sample_rate)
        nyquist = self.sample_rate / 2
        self.low = widgets.FloatSlider(
            value=low_hz, min=probe.min_low_hz, max=nyquist - probe.min_band_hz, step=10,
            description="low (Hz)", continuous_update=False,
            layout=widgets.Layout(width="32em"),
        )  # fmt: skip
        self.band = widgets.FloatSlider(
            value=band_hz, min=probe.min_band_hz, max=nyquist - probe.min_low_hz, step=10,
            description="band (Hz)", continuous_update=False,
            layout=widgets.Layout(width="32em"),
        )  # fmt: skip
        self.kernel_size = widgets.IntSlider(
            value=probe.kernel_size, min=15, max=1025, step=2, description="taps",
            continuous_update=False,
        )  # fmt: skip
        self.output = widgets.Output()
        for control in (self.low, self.band, self.kernel_size):
            control.observe(lambda _: self._update(), names="value")
        self._update()
        self.widget = widgets.VBox([self.low, self.band, self.kernel_size, self.output])

    def _layer(self):
        """A one-filter SincConv1D whose cut-offs are the sliders' values."""
        from lcnn.detector.layers import SincConv1D

        layer = SincConv1D(1, self.kernel_size.value, sample_rate=self.sample_rate)
        layer.build((None, layer.kernel_size, 1))
        # the layer adds its minimums back to its learnable numbers
        layer.set_params_hz([self.low.value - layer.min_low_hz],
                            [self.band.value - layer.min_band_hz])
        return layer

    def _update(self) -> None:
        layer = self._layer()
        self.taps = layer.filter_bank()[:, 0]
        low, high = layer.cutoffs_hz()
        self.cutoffs = (float(low[0]), float(high[0]))
        gain = np.abs(np.fft.rfft(self.taps, self.N_FFT))
        self.freqs = np.fft.rfftfreq(self.N_FFT, 1 / self.sample_rate)
        self.response_db = 20 * np.log10(gain / gain.max() + 1e-12)
        self.edges = band_edges(self.freqs, self.response_db)
        _show(self.output, self._figure())

    def _figure(self) -> Figure:
        fig = Figure(figsize=(10, 3.2), dpi=110, layout="constrained")
        taps_ax, freq_ax = fig.subplots(1, 2, width_ratios=[1, 1.5])
        t_ms = (np.arange(len(self.taps)) - (len(self.taps) - 1) / 2) / self.sample_rate * 1000
        taps_ax.plot(t_ms, self.taps, lw=1)
        taps_ax.set(title=f"impulse response ({len(self.taps)} taps)", xlabel="time (ms)")
        low, high = self.cutoffs
        freq_ax.plot(self.freqs, self.response_db, lw=1, label="SincConv1D filter")
        freq_ax.plot([0, low, low, high, high, self.sample_rate / 2], [-80, -80, 0, 0, -80, -80],
                     "k--", lw=0.8, label="ideal band-pass")  # fmt: skip
        freq_ax.axvspan(*self.edges, color="tab:orange", alpha=0.2, label="-3 dB band")
        freq_ax.set(title=f"low {low:.0f} Hz, high {high:.0f} Hz; -3 dB band "
                          f"{self.edges[0]:.0f}-{self.edges[1]:.0f} Hz",
                    xlabel="frequency (Hz)", ylabel="dB re peak", ylim=(-80, 5))  # fmt: skip
        freq_ax.legend(loc="lower right", fontsize=8)
        return fig


# ------------------------------------------------------------------ ScoreExplorer

SORTS = {
    "worst mistakes first": "error",
    "most fake-sounding first": "score",
    "file name": "file",
}


@dataclasses.dataclass
class ScoredClip:
    """One clip of a split with the model's raw score (higher = more FAKE)."""

    index: int
    file: Path
    label: int  # REAL=0, FAKE=1
    score: float
    attack: str | None

    @property
    def error(self) -> float:
        """|label - score|: 0 is a confident right answer, 1 a confident wrong one."""
        return abs(self.label - self.score)


class ScoreExplorer:
    """A trained run's scores on one split, sortable by the model's worst mistakes.

    Shows a table of the clips in the chosen order, and for the chosen clip an Audio player
    of what the model heard (the centre crop it scored), the raw score (higher = more FAKE),
    the verdict at `threshold`, the truth, and the waveform and spectrogram.
    State: `rows` (ScoredClip, current order), `current` (the chosen ScoredClip),
    `current_clip` (the samples the model scored), `player`, `figure`.
    """

    def __init__(self, run_dir: str | Path, data_path: str | Path | None = None,
                 split: str = "testing", threshold: float = 0.5, top: int = 12):  # fmt: skip
        from lcnn.detector import data, runs
        from lcnn.detector.predict import predict_scores

        self.cfg = runs.load_config(run_dir)
        data_path = data_path or runs.data_spec(run_dir)
        self.threshold = threshold
        self.top = top
        self.clips = data.load_split(data_path, split, self.cfg, progress=False)
        model = runs.load_model(run_dir)
        scores = predict_scores(model, data.make_dataset(self.clips, self.cfg, training=False))
        attacks = self.clips.meta.get("attack")
        self.all_rows = [
            ScoredClip(i, path, int(label), float(score),
                        None if attacks is None else str(attacks[i]))
            for i, (path, label, score) in enumerate(
                zip(self.clips.files, self.clips.labels, scores, strict=True))
        ]  # fmt: skip
        self.sort = widgets.Dropdown(options=list(SORTS), description="sort")
        self.show_class = widgets.Dropdown(options=[ALL, *LABELS], description="class")
        self.clip = widgets.Dropdown(options=[], description="clip",
                                     layout=widgets.Layout(width="46em"))  # fmt: skip
        self.table = widgets.HTML()
        self.output = widgets.Output()
        self.rows: list[ScoredClip] = []
        self.current: ScoredClip | None = None
        self._busy = False
        self.sort.observe(lambda _: self._refresh(), names="value")
        self.show_class.observe(lambda _: self._refresh(), names="value")
        self.clip.observe(lambda _: None if self._busy else self._update(), names="value")
        self._refresh()
        self.widget = widgets.VBox([widgets.HBox([self.sort, self.show_class]), self.table,
                                    self.clip, self.output])  # fmt: skip

    def verdict(self, score: float) -> str:
        """'fake' when the score reaches the threshold, else 'real'."""
        from lcnn.detector.predict import verdict

        return verdict(score, self.threshold)

    def _refresh(self) -> None:
        key = SORTS[self.sort.value]
        rows = [r for r in self.all_rows
                if self.show_class.value == ALL or LABELS[r.label] == self.show_class.value]
        if key == "error":
            rows.sort(key=lambda r: (-r.error, r.file.name))
        elif key == "score":
            rows.sort(key=lambda r: (-r.score, r.file.name))
        else:
            rows.sort(key=lambda r: r.file.name)
        self.rows = rows
        self._busy = True
        try:
            self.clip.options = [(self._describe(r), r.index) for r in rows]
            self.clip.value = rows[0].index if rows else None
        finally:
            self._busy = False
        self.table.value = self._table_html(rows[: self.top])
        self._update()

    def _describe(self, row: ScoredClip) -> str:
        attack = f" ({row.attack})" if row.attack else ""
        return (f"score={row.score:.3f}  {LABELS[row.label]}{attack} -> "
                f"{self.verdict(row.score)}  {row.file.name}")  # fmt: skip

    def _table_html(self, rows: list[ScoredClip]) -> str:
        head = "<tr><th>file</th><th>truth</th><th>attack</th><th>score</th><th>verdict</th></tr>"
        body = "".join(
            f"<tr><td>{r.file.name}</td><td>{LABELS[r.label]}</td><td>{r.attack or ''}</td>"
            f"<td>{r.score:.3f}</td><td>{'' if self.verdict(r.score) == LABELS[r.label] else '✗ '}"
            f"{self.verdict(r.score)}</td></tr>"
            for r in rows
        )
        return f"<table>{head}{body}</table>"

    def model_input(self, index: int) -> np.ndarray:
        """The samples the model scored for clip `index`: the centre crop of its valid part,
        as lcnn.detector.data.make_dataset cuts it for evaluation."""
        n = self.cfg.n_samples
        length = int(self.clips.lengths[index])
        start = max(length - n, 0) // 2
        row = np.asarray(self.clips.audio[index, start : start + n], dtype=np.float32)
        return row / INT16_SCALE

    def _update(self) -> None:
        index = self.clip.value
        if index is None:
            self.current, self.current_clip, self.player, self.figure = None, None, None, None
            _show(self.output, "No clip of this class.")
            return
        self.current = self.all_rows[index]
        self.current_clip = self.model_input(index)
        self.player = audio_player(self.current_clip, self.cfg.sample_rate)
        r = self.current
        verdict = self.verdict(r.score)
        mark = "right" if verdict == LABELS[r.label] else "WRONG"
        summary = widgets.HTML(
            f"<b>{r.file.name}</b><br>truth: {LABELS[r.label]}"
            f"{f' ({r.attack})' if r.attack else ''} &nbsp; raw score = {r.score:.3f} "
            f"&nbsp; verdict at {self.threshold:.3f}: {verdict} ({mark})"
        )
        self.figure = clip_figure([(r.file.name[:60], self.current_clip)], self.cfg.sample_rate)
        _show(self.output, summary, self.player, self.figure)

    @property
    def current_file(self) -> Path | None:
        return self.current.file if self.current else None

    @property
    def current_score(self) -> float | None:
        return self.current.score if self.current else None

    @property
    def current_verdict(self) -> str | None:
        return self.verdict(self.current.score) if self.current else None


# ------------------------------------------------------------------ ChannelPlayer


class ChannelPlayer:
    """Hear and score a clip through each channel of lcnn.channels.CONDITIONS.

    Pick a file and a condition: the widget plays the clip as the model hears it (its centre
    crop) and the same crop through the channel, draws both, and shows the run's raw score
    and verdict at `threshold` for each. State: `clean` and `through` (the two crops),
    `scores` (raw score of each), `players`, `figure`.
    """

    def __init__(self, run_dir: str | Path, files: list[Path], threshold: float = 0.5,
                 seed: int = 0):  # fmt: skip
        from lcnn.channels import CONDITIONS
        from lcnn.detector import runs

        self.cfg = runs.load_config(run_dir)
        self.model = runs.load_model(run_dir)
        self.threshold, self.seed = threshold, seed
        self.file = widgets.Dropdown(options=[(Path(f).name, Path(f)) for f in files],
                                     description="file", layout=widgets.Layout(width="32em"))
        self.condition = widgets.Dropdown(options=[c for c in CONDITIONS if c != "clean"],
                                          description="channel")  # fmt: skip
        self.output = widgets.Output()
        self.clean: np.ndarray | None = None
        self.through: np.ndarray | None = None
        self.scores: tuple[float, float] | None = None
        self.players: list[Audio] = []
        self.figure: Figure | None = None
        self._crops: dict[Path, np.ndarray] = {}
        for control in (self.file, self.condition):
            control.observe(lambda _: self._update(), names="value")
        self._update()
        self.widget = widgets.VBox([widgets.HBox([self.file, self.condition]), self.output])

    def _clean_crop(self, path: Path) -> np.ndarray:
        """The centre crop the model scores, decoded once per file (not per channel picked)."""
        from lcnn.audio import fix_length, load_audio

        if path not in self._crops:
            audio = load_audio(path, self.cfg.sample_rate)
            self._crops[path] = fix_length(audio, self.cfg.n_samples).astype(np.float32)
        return self._crops[path]

    def _update(self) -> None:
        from lcnn.audio import fix_length
        from lcnn.channels import condition
        from lcnn.detector.predict import verdict

        sr, n = self.cfg.sample_rate, self.cfg.n_samples
        self.clean = self._clean_crop(self.file.value)
        channel = condition(self.condition.value)
        rng = np.random.default_rng(self.seed)  # the same noise or room on every visit
        self.through = fix_length(channel(self.clean, sr, rng), n).astype(np.float32)
        batch = np.stack([self.clean, self.through])
        self.scores = tuple(float(s) for s in self.model.predict(batch, verbose=0)[:, 0])
        self.players = [audio_player(x, sr) for x in batch]
        verdicts = [verdict(s, self.threshold) for s in self.scores]
        summary = widgets.HTML(
            f"<b>{self.file.value.name}</b>: raw score {self.scores[0]:.3f} ({verdicts[0]}) "
            f"clean, {self.scores[1]:.3f} ({verdicts[1]}) through {self.condition.value}; "
            f"verdicts at {self.threshold:.3f}")
        self.figure = clip_figure([("clean", self.clean), (self.condition.value, self.through)],
                                  sr)
        _show(self.output, summary, "clean:", self.players[0],
              f"through {self.condition.value}:", self.players[1], self.figure)


# ------------------------------------------------------------------ ThresholdExplorer


class ThresholdExplorer:
    """Move the decision threshold over the raw scores and watch the errors trade places.

    A slider sets the threshold (a clip is called fake when its raw score is at or above it);
    buttons jump to named thresholds (e.g. the ones stored in calibration.json). The figure
    shows the DET curve with the operating point and the confusion matrix at that threshold.
    State: `threshold`, `confusion` (tn, fp, fn, tp), `false_alarm` and `miss` rates, and
    `dcf` (normalised, ASVspoof 5's costs), `figure`.
    """

    def __init__(self, labels, scores, threshold: float = 0.5,
                 presets: dict[str, float] | None = None):  # fmt: skip
        self.labels = np.asarray(labels).astype(int).ravel()
        self.scores = np.asarray(scores, dtype=float).ravel()
        self.slider = widgets.FloatSlider(
            value=threshold, min=0.0, max=1.0, step=0.001, readout_format=".3f",
            description="threshold", continuous_update=False,
            layout=widgets.Layout(width="40em"),
        )  # fmt: skip
        self.presets = {k: float(v) for k, v in (presets or {}).items() if v is not None}
        self.buttons = [widgets.Button(description=name, layout=widgets.Layout(width="auto"))
                        for name in self.presets]
        for button in self.buttons:
            button.on_click(lambda b: setattr(self.slider, "value", self.presets[b.description]))
        self.summary = widgets.HTML()
        self.output = widgets.Output()
        self.slider.observe(lambda _: self._update(), names="value")
        self._update()
        self.widget = widgets.VBox([self.slider, widgets.HBox(self.buttons), self.summary,
                                    self.output])  # fmt: skip

    def _update(self) -> None:
        from lcnn import metrics
        from lcnn.course import plots

        self.threshold = float(self.slider.value)
        fake = self.scores >= self.threshold
        real = self.labels == 0
        self.confusion = {"tn": int(np.sum(real & ~fake)), "fp": int(np.sum(real & fake)),
                          "fn": int(np.sum(~real & ~fake)), "tp": int(np.sum(~real & fake))}
        self.false_alarm = float(np.mean(fake[real]))
        self.miss = float(np.mean(~fake[~real]))
        self.dcf = float(metrics.dcf(self.false_alarm, self.miss))
        self.summary.value = (
            f"threshold {self.threshold:.3f}: {100 * self.false_alarm:.1f}% of real clips "
            f"called fake, {100 * self.miss:.1f}% of fakes missed; DCF (ASVspoof 5 costs) "
            f"{self.dcf:.3f}")
        self.figure = Figure(figsize=(9.6, 4.2), dpi=100, layout="constrained")
        det_ax, cm_ax = self.figure.subplots(1, 2)
        plots.plot_det(self.labels, self.scores, threshold=self.threshold, ax=det_ax)
        plots.confusion_matrix(self.labels, self.scores, self.threshold, ax=cm_ax)
        _show(self.output, self.figure)
