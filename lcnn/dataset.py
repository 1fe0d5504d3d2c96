"""Where a dataset's files and labels come from: every layout lcnn reads, in one module.

- **Fake-or-Real folders** (`FoldersSource`): `<root>/{training,validation,testing}/{real,fake}/`
  with audio files inside, optionally a `<root>/metadata.csv` with a `file` column (a path
  relative to root) and per-file columns such as `attack` and `speaker` (the demo corpus has one).
- **ASVspoof protocol files** (`ProtocolSource`): one whitespace-separated line per file,
  speaker first and file name second, the key `bonafide`/`spoof` in a later column and the
  attack just before it. This reads ASVspoof 2019 LA (`SPEAKER FILE - ATTACK KEY`), the 2021
  LA/DF keys (`SPEAKER FILE CODEC TRANSMISSION ATTACK KEY ...`) and ASVspoof 5
  (`SPEAKER FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK KEY -`).
- **CSV lists** (`CsvSource`): a manifest `path,label[,split,attack,speaker,...]` or
  In-the-Wild's `meta.csv` (`file,speaker,label`). Paths are relative to the CSV's folder.
  Labels: real/bonafide/bona-fide or fake/spoof. Without a `split` column every row is in
  the testing split.

`open_source(spec)` turns what a user typed (a folder, a .csv file, or the dict that
`DataSource.spec()` returns) into a source, and `data_spec(spec)` into the dict a run folder
stores (absolute paths); `source.listing(split)` gives the files, their labels (REAL=0 /
FAKE=1) and metadata columns. No TensorFlow here: listing files is cheap.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lcnn import FAKE, REAL
from lcnn.errors import LayoutError

SPLITS = {
    "training": ("training", "train"),
    "validation": ("validation", "val", "valid", "dev"),
    "testing": ("testing", "test", "eval", "evaluation"),
}
CLASSES = {"real": REAL, "fake": FAKE}
LABEL_WORDS = {
    "real": REAL, "bonafide": REAL, "bona-fide": REAL, "bona fide": REAL, "genuine": REAL,
    "fake": FAKE, "spoof": FAKE, "spoofed": FAKE,
}  # fmt: skip
# What soundfile (libsndfile >= 1.1) decodes. Only the last suffix counts, so FoR names
# such as `file1.mp3.wav_16k.wav_norm.wav_mono.wav_silence.wav_2sec.wav` are WAV files.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au")
METADATA = "metadata.csv"
MAX_NAMED = 3  # missing files named in an error message


@dataclass
class Listing:
    """The files of one split: paths, labels (REAL=0 / FAKE=1), the folder the paths are
    stored relative to (in caches and score files), and per-file metadata columns."""

    root: Path
    files: list[Path]
    labels: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.files)


class DataSource:
    """A dataset: which splits it has and, for each, a Listing."""

    def splits(self) -> list[str]:
        raise NotImplementedError

    def listing(self, split: str) -> Listing:
        raise NotImplementedError

    def spec(self) -> dict[str, object]:
        """A JSON-able description that `open_source` turns back into this source."""
        raise NotImplementedError


def canonical_split(split: str) -> str:
    """'Train', 'val', 'dev', 'test', 'eval', ... -> 'training', 'validation', 'testing'."""
    for name, aliases in SPLITS.items():
        if split.lower() in aliases:
            return name
    raise LayoutError(f"unknown split {split!r}: expected training, validation or testing")


def parse_label(word: str, where: str) -> int:
    """REAL or FAKE from a label word (real/bonafide/bona-fide, fake/spoof), any case."""
    label = LABEL_WORDS.get(word.strip().lower())
    if label is None:
        raise LayoutError(f"{where}: unknown label {word!r} (expected real/bonafide or "
                          "fake/spoof)")
    return label


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def audio_files(folder: Path) -> list[Path]:
    """Audio files under `folder` (recursively, sorted), skipping hidden files like ._x.wav."""
    return sorted(
        path
        for path in folder.rglob("*")
        if is_audio(path)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def _common_root(files: list[Path]) -> Path:
    return Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path(".")


def _listing(files: list[Path], labels: list[int], meta: dict[str, list[str]],
             root: Path | None = None) -> Listing:
    return Listing(root or _common_root(files), files, np.asarray(labels, dtype=np.int32),
                   {k: np.asarray(v) for k, v in meta.items()})


def _check_both_classes(listing: Listing, where: str) -> Listing:
    if len(listing) and len(set(listing.labels.tolist())) < 2:
        only = "real" if listing.labels[0] == REAL else "fake"
        raise LayoutError(f"{where}: only {only} files; a split needs real and fake files")
    return listing


def _require_files(files: list[Path], where: str, lines: list[int] | None = None) -> None:
    """LayoutError naming the first missing files (with their line numbers when known)."""
    missing = [i for i, f in enumerate(files) if not f.is_file()]
    if missing:
        named = ", ".join((f"line {lines[i]}: " if lines else "") + str(files[i])
                          for i in missing[:MAX_NAMED])
        more = f" and {len(missing) - MAX_NAMED} more" if len(missing) > MAX_NAMED else ""
        raise LayoutError(f"{where}: {len(missing)} listed file(s) not found: {named}{more}")


# ------------------------------------------------------------------ Fake-or-Real folders


def _subdirs(folder: Path) -> dict[str, Path]:
    """Visible sub-folders by lower-case name (hidden ones such as .lcnn-cache are ignored)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not path.name.startswith("."):
            key = path.name.lower()
            if key in found:
                raise LayoutError(f"{folder}: both {found[key].name}/ and {path.name}/ exist")
            found[key] = path
    return found


def _names(dirs: dict[str, Path]) -> str:
    return ", ".join(f"{p.name}/" for p in dirs.values()) or "no folders"


def _match_splits(folder: Path, dirs: dict[str, Path]) -> dict[str, Path]:
    splits: dict[str, Path] = {}
    for name, aliases in SPLITS.items():
        matches = [dirs[a] for a in aliases if a in dirs]
        if len(matches) > 1:
            found = " and ".join(f"{p.name}/" for p in matches)
            raise LayoutError(f"{folder}: {found} are both the {name} split; keep one")
        if matches:
            splits[name] = matches[0]
    return splits


def class_folders(split_dir: Path) -> dict[str, Path]:
    """The real/ and fake/ folders of a split folder (any letter case)."""
    dirs = _subdirs(split_dir)
    if not all(name in dirs for name in CLASSES):
        raise LayoutError(f"{split_dir}: expected real/ and fake/ folders, found {_names(dirs)}")
    return {name: dirs[name] for name in CLASSES}


def find_splits(root: str | Path) -> dict[str, Path]:
    """Map "training" / "validation" / "testing" to their folders under `root`.

    Folder names match in any letter case, and train/, val/, dev/, test/ are accepted.
    An extracted archive's extra top folder (root/for-2seconds/training/...) is entered
    when root holds exactly one folder and no split folder. Each split found must hold
    real/ and fake/. Raises LayoutError saying what was found and what was expected.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(
            f"{root}: no such folder" if not root.exists() else f"{root}: not a folder"
        )
    folder = root
    for _ in range(3):  # a few wrapper folders at most
        dirs = _subdirs(folder)
        splits = _match_splits(folder, dirs)
        if splits or len(dirs) != 1:
            break
        folder = next(iter(dirs.values()))
    if not splits:
        hint = ""
        if all(name in dirs for name in CLASSES):
            hint = " (this looks like one split: pass the folder above it)"
        raise LayoutError(
            f"{folder}: found {_names(dirs)}; expected training/, validation/ and testing/ "
            f"(or train/, val/, test/), each with real/ and fake/ inside{hint}"
        )
    for split_dir in splits.values():
        class_folders(split_dir)
    return splits


def list_files(root: str | Path, split: str) -> tuple[list[Path], np.ndarray]:
    """Audio files of one split, real ones first then fake ones (each sorted), and labels."""
    splits = find_splits(root)
    name = canonical_split(split)
    if name not in splits:
        found = ", ".join(f"{p.name}/" for p in splits.values())
        raise LayoutError(f"{root}: no {name} split folder (found {found})")
    files: list[Path] = []
    labels: list[int] = []
    for cls, folder in class_folders(splits[name]).items():
        found_files = audio_files(folder)
        if not found_files:
            raise LayoutError(f"{folder}: no audio files (looked for {' '.join(AUDIO_SUFFIXES)})")
        files += found_files
        labels += [CLASSES[cls]] * len(found_files)
    return files, np.asarray(labels, dtype=np.int32)


def read_metadata(data_path: str | Path) -> dict[str, dict[str, str]]:
    """Rows of <data_path>/metadata.csv keyed by the `file` column (a path relative to
    data_path). Empty when there is no such file or it has no `file` column (e.g. FoR)."""
    path = Path(data_path) / METADATA
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0]:
        return {}
    return {Path(row["file"]).as_posix(): row for row in rows}


def metadata_columns(data_path: str | Path, files: list[Path]) -> dict[str, np.ndarray]:
    """Per-file metadata columns (all but `file`) from <data_path>/metadata.csv.

    Empty when there is no metadata.csv or it does not describe every file (don't guess).
    """
    rows = read_metadata(data_path)
    if not rows:
        return {}
    root = Path(data_path).resolve()
    try:
        keys = [Path(f).resolve().relative_to(root).as_posix() for f in files]
    except ValueError:
        return {}
    if not all(k in rows for k in keys):
        return {}
    columns = [c for c in next(iter(rows.values())) if c != "file"]
    return {c: np.array([rows[k][c] for k in keys]) for c in columns}


class FoldersSource(DataSource):
    """The Fake-or-Real layout, with the metadata.csv columns when there is one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._splits = find_splits(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def splits(self) -> list[str]:
        return list(self._splits)

    def listing(self, split: str) -> Listing:
        files, labels = list_files(self.root, split)
        return Listing(self.root, files, labels, metadata_columns(self.root, files))

    def spec(self) -> dict[str, object]:
        return {"format": "folders", "path": str(self.root)}


# ------------------------------------------------------------------ ASVspoof protocols


def _resolve_audio(audio_dir: Path, name: str) -> Path:
    """audio_dir/name if it has an audio suffix, else the first of name.flac / name.wav that
    exists (ASVspoof protocols list file names without a suffix)."""
    path = audio_dir / name
    if is_audio(path):
        return path
    for suffix in (".flac", ".wav"):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + ".flac")  # reported as missing by the caller


def read_protocol(path: str | Path, audio_dir: str | Path) -> Listing:
    """Files, labels, attack and speaker (and gender for ASVspoof 5) of an ASVspoof protocol.

    The key is the first `bonafide`/`spoof` column after the file name; the attack is the
    column before it (`-` and `bonafide` mean bona fide speech).
    """
    path, audio_dir = Path(path), Path(audio_dir)
    if not path.is_file():
        raise LayoutError(f"{path}: no such protocol file")
    if not audio_dir.is_dir():
        raise LayoutError(f"{audio_dir}: no such audio folder")
    files, labels, numbers = [], [], []
    meta: dict[str, list[str]] = {"speaker": [], "attack": []}
    genders: list[str] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            cols = line.split()
            if not cols:
                continue
            where = f"{path}, line {number}"
            keys = [i for i, c in enumerate(cols[2:], 2) if c.lower() in ("bonafide", "spoof")]
            if len(cols) < 3 or not keys:
                raise LayoutError(f"{where}: expected 'SPEAKER FILE ... ATTACK KEY' with KEY "
                                  f"bonafide or spoof, found {line.strip()!r}")
            key = keys[0]
            label = parse_label(cols[key], where)
            attack = cols[key - 1] if key > 2 else "-"
            files.append(_resolve_audio(audio_dir, cols[1]))
            labels.append(label)
            numbers.append(number)
            meta["speaker"].append(cols[0])
            meta["attack"].append("bonafide" if label == REAL else attack)
            if len(cols) >= 10 and cols[2] in ("F", "M"):  # ASVspoof 5: gender third
                genders.append(cols[2])
    if not files:
        raise LayoutError(f"{path}: no lines")
    if len(genders) == len(files):
        meta["gender"] = genders
    _require_files(files, f"{path} (audio in {audio_dir})", numbers)
    return _check_both_classes(_listing(files, labels, meta, audio_dir), str(path))


class ProtocolSource(DataSource):
    """ASVspoof protocol files, one per split, with their audio under one folder each."""

    def __init__(self, protocols: dict[str, str | Path], audio_dirs: dict[str, str | Path]):
        self.protocols = {canonical_split(s): Path(p) for s, p in protocols.items() if p}
        self.audio_dirs = {canonical_split(s): Path(d) for s, d in audio_dirs.items() if d}
        for split, protocol in self.protocols.items():  # fail before any listing is read
            if split not in self.audio_dirs:
                raise LayoutError(f"{protocol}: no audio folder given for the {split} split")
            if not protocol.is_file():
                raise LayoutError(f"{protocol}: no such protocol file")
            if not self.audio_dirs[split].is_dir():
                raise LayoutError(f"{self.audio_dirs[split]}: no such audio folder (for the "
                                  f"{split} protocol {protocol})")

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self.protocols.values())

    def splits(self) -> list[str]:
        return list(self.protocols)

    def listing(self, split: str) -> Listing:
        name = canonical_split(split)
        if name not in self.protocols:
            raise LayoutError(f"no protocol file for the {name} split (this dataset has: "
                              f"{', '.join(self.protocols) or 'none'}); name one with "
                              "--protocol FILE --audio_dir DIR")
        return read_protocol(self.protocols[name], self.audio_dirs[name])

    def spec(self) -> dict[str, object]:
        return {"format": "asvspoof",
                "protocols": {s: str(p) for s, p in self.protocols.items()},
                "audio_dirs": {s: str(d) for s, d in self.audio_dirs.items()}}


# ------------------------------------------------------------------ CSV lists


def read_csv_list(path: str | Path) -> dict[str, Listing]:
    """Listings by split from a CSV manifest or an In-the-Wild meta.csv.

    Needs a path column (`path` or `file`) and `label`; optional `split` (rows without one
    are testing) and any other columns, kept as metadata (attack, speaker, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                for row in reader]
    file_col = next((c for c in ("path", "file") if c in columns), None)
    if file_col is None or "label" not in columns:
        raise LayoutError(f"{path}: needs a path (or file) column and a label column; "
                          f"found {', '.join(columns) or 'no header'}")
    extra = [c for c in columns if c not in (file_col, "label", "split")]
    by_split: dict[str, tuple[list[Path], list[int], dict[str, list[str]], list[int]]] = {}
    for number, row in enumerate(rows, 2):
        where = f"{path}, line {number}"
        split = canonical_split(row.get("split") or "testing")
        files, labels, meta, numbers = by_split.setdefault(
            split, ([], [], {c: [] for c in extra}, []))
        # absolute: a list may mix absolute paths with paths relative to its folder
        files.append(path.absolute().parent / row[file_col])
        labels.append(parse_label(row["label"], where))
        numbers.append(number)
        for c in extra:
            meta[c].append(row.get(c, ""))
    if not by_split:
        raise LayoutError(f"{path}: no rows")
    out = {}
    for split, (files, labels, meta, numbers) in by_split.items():
        _require_files(files, f"{path} ({split})", numbers)
        out[split] = _check_both_classes(_listing(files, labels, meta), f"{path} ({split})")
    return out


class CsvSource(DataSource):
    """A CSV manifest or In-the-Wild's meta.csv."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._listings = read_csv_list(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def splits(self) -> list[str]:
        return list(self._listings)

    def listing(self, split: str) -> Listing:
        name = canonical_split(split)
        if name not in self._listings:
            raise LayoutError(f"{self.path}: no rows in the {name} split (split column values: "
                              f"{', '.join(self._listings)})")
        return self._listings[name]

    def spec(self) -> dict[str, object]:
        return {"format": "csv", "path": str(self.path)}


# ------------------------------------------------------------------ choosing a source


def _layout(path: Path) -> tuple[str, Path]:
    """Which reader a path a user typed needs: ("csv", the .csv file) or ("folders", path)."""
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise LayoutError(f"{path}: expected a folder or a .csv list of files")
        return "csv", path
    if path.is_dir() and (path / "meta.csv").is_file() and not _match_splits(path, _subdirs(path)):
        return "csv", path / "meta.csv"
    return "folders", path


def _absolute(path: str | Path) -> str:
    return str(Path(path).resolve())


def data_spec(data: str | Path | dict) -> dict[str, object]:
    """What a user named (a folder, a .csv file, or a dict from DataSource.spec()) as the spec
    a run folder stores: the format and absolute paths, so that the same dataset named two
    ways compares equal. Reads no listing (only which kind of path it is)."""
    if not isinstance(data, dict):
        kind, path = _layout(Path(data))
        return {"format": kind, "path": _absolute(path)}
    kind = data.get("format")
    try:
        if kind in ("folders", "csv"):
            return {"format": kind, "path": _absolute(data["path"])}
        if kind == "asvspoof":
            return {"format": kind,
                    **{key: {canonical_split(s): _absolute(p) for s, p in data[key].items()}
                       for key in ("protocols", "audio_dirs")}}
    except (KeyError, TypeError, AttributeError):
        raise LayoutError(f"incomplete dataset description {data!r}") from None
    raise LayoutError(f"unknown dataset format {kind!r} (expected folders, csv or asvspoof)")


def open_source(spec: str | Path | dict) -> DataSource:
    """The source a user named: a folder (FoR layout, or one holding In-the-Wild's meta.csv),
    a .csv file, or a dict from DataSource.spec() or data_spec()."""
    if not isinstance(spec, dict):
        kind, path = _layout(Path(spec))
        return CsvSource(path) if kind == "csv" else FoldersSource(path)
    data_spec(spec)  # checks the dict: a damaged run folder gives one clear error
    if spec["format"] == "asvspoof":
        return ProtocolSource(spec["protocols"], spec["audio_dirs"])
    return (CsvSource if spec["format"] == "csv" else FoldersSource)(spec["path"])


def unseen_attacks(data_path) -> list[str]:
    """Attack families found in `testing` but not in `training` (the `attack` metadata column;
    none for a dataset without one, such as FoR)."""
    source = open_source(data_path)
    found = {split: {str(a) for a in source.listing(split).meta.get("attack", [])}
             for split in ("training", "testing")}
    return sorted(found["testing"] - found["training"])
