"""Dataset layouts: FoR folders, ASVspoof protocol files, CSV manifests and In-the-Wild's
meta.csv, each on small generated examples."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from lcnn import FAKE, REAL
from lcnn.dataset import (
    CsvSource,
    FoldersSource,
    ProtocolSource,
    data_spec,
    open_source,
    read_protocol,
)
from lcnn.errors import LayoutError


def _tone(path, seconds=0.5, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), rate)
    return path


# Lines as the ASVspoof protocols print them (file names made up).
LA2019 = """LA_0079 LA_T_1000001 - - bonafide
LA_0079 LA_T_1000002 - A01 spoof
LA_0080 LA_T_1000003 - A02 spoof
"""
LA2021 = """LA_0009 LA_E_2000001 alaw ita_tx bonafide bonafide notrim eval
LA_0009 LA_E_2000002 alaw ita_tx A07 spoof notrim eval
"""
ASV5 = """T_4850 T_0000000001 F - - - - bonafide bonafide -
T_4851 T_0000000002 M - - - AC3 A05 spoof -
"""


@pytest.mark.parametrize("text, speakers, attacks, labels", [
    (LA2019, ["LA_0079", "LA_0079", "LA_0080"], ["bonafide", "A01", "A02"], [REAL, FAKE, FAKE]),
    (LA2021, ["LA_0009", "LA_0009"], ["bonafide", "A07"], [REAL, FAKE]),
    (ASV5, ["T_4850", "T_4851"], ["bonafide", "A05"], [REAL, FAKE]),
])  # fmt: skip
def test_asvspoof_protocols(tmp_path, text, speakers, attacks, labels):
    protocol = tmp_path / "protocol.txt"
    protocol.write_text(text)
    for line in text.splitlines():
        _tone(tmp_path / "flac" / f"{line.split()[1]}.flac")
    listing = read_protocol(protocol, tmp_path / "flac")
    assert [f.name for f in listing.files] == [f"{ln.split()[1]}.flac" for ln in text.splitlines()]
    assert listing.labels.tolist() == labels
    assert listing.meta["speaker"].tolist() == speakers
    assert listing.meta["attack"].tolist() == attacks
    assert listing.root == tmp_path / "flac"


def test_asvspoof5_protocol_has_gender(tmp_path):
    (tmp_path / "p.tsv").write_text(ASV5)
    for name in ("T_0000000001", "T_0000000002"):
        _tone(tmp_path / f"{name}.flac")
    assert read_protocol(tmp_path / "p.tsv", tmp_path).meta["gender"].tolist() == ["F", "M"]


def test_protocol_errors_name_the_problem(tmp_path):
    (tmp_path / "p.txt").write_text(LA2019)
    _tone(tmp_path / "LA_T_1000001.flac")
    with pytest.raises(LayoutError, match=r"p.txt \(audio in .*\): 2 listed file\(s\) not found: "
                       r"line 2: .*LA_T_1000002.flac, line 3: .*LA_T_1000003.flac$"):
        read_protocol(tmp_path / "p.txt", tmp_path)
    (tmp_path / "bad.txt").write_text("LA_0079 LA_T_1 - A01 maybe\n")
    with pytest.raises(LayoutError, match=r"bad.txt, line 1: expected 'SPEAKER FILE"):
        read_protocol(tmp_path / "bad.txt", tmp_path)
    with pytest.raises(LayoutError, match="no such audio folder"):
        read_protocol(tmp_path / "p.txt", tmp_path / "nowhere")


def test_protocol_source_by_split_and_spec_round_trip(tmp_path):
    (tmp_path / "train.txt").write_text(LA2019)
    for line in LA2019.splitlines():
        _tone(tmp_path / "train" / f"{line.split()[1]}.wav")  # .wav found as well
    source = ProtocolSource({"train": tmp_path / "train.txt"}, {"train": tmp_path / "train"})
    assert source.splits() == ["training"]
    again = open_source(source.spec())
    assert again.listing("training").files == source.listing("training").files
    with pytest.raises(LayoutError, match="no protocol file for the validation split"):
        source.listing("dev")
    with pytest.raises(LayoutError, match=r"nowhere: no such audio folder \(for the training"):
        ProtocolSource({"train": tmp_path / "train.txt"}, {"train": tmp_path / "nowhere"})
    with pytest.raises(LayoutError, match=r"dev.txt: no such protocol file"):
        ProtocolSource({"dev": tmp_path / "dev.txt"}, {"dev": tmp_path / "train"})


def test_data_spec_names_one_dataset_one_way(tmp_path, monkeypatch):
    """The spec a run folder stores: absolute paths, canonical split names, and the reader
    open_source would choose (an In-the-Wild folder is its meta.csv)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "for").mkdir()
    assert data_spec("for") == data_spec(tmp_path / "for") == {
        "format": "folders", "path": str(tmp_path / "for")}
    (tmp_path / "itw").mkdir()
    (tmp_path / "itw" / "meta.csv").write_text("file,speaker,label\n")
    assert data_spec("itw") == {"format": "csv", "path": str(tmp_path / "itw" / "meta.csv")}
    spec = {"format": "asvspoof", "protocols": {"dev": "d.txt"}, "audio_dirs": {"dev": "a"}}
    assert data_spec(spec) == {"format": "asvspoof",
                               "protocols": {"validation": str(tmp_path / "d.txt")},
                               "audio_dirs": {"validation": str(tmp_path / "a")}}
    assert data_spec(data_spec(spec)) == data_spec(spec)
    (tmp_path / "list.txt").write_text("")
    with pytest.raises(LayoutError, match="list.txt: expected a folder or a .csv list"):
        data_spec("list.txt")


def test_csv_manifest_with_splits_and_metadata(tmp_path):
    for i in range(4):
        _tone(tmp_path / "audio" / f"{i}.wav")
    (tmp_path / "list.csv").write_text(
        "path,label,split,attack,speaker\n"
        "audio/0.wav,real,train,bonafide,ann\n"
        "audio/1.wav,fake,train,vits,ann\n"
        "audio/2.wav,bona-fide,test,bonafide,bob\n"
        "audio/3.wav,spoof,test,hifigan,bob\n"
    )
    source = open_source(tmp_path / "list.csv")
    assert isinstance(source, CsvSource) and sorted(source.splits()) == ["testing", "training"]
    test = source.listing("testing")
    assert [f.name for f in test.files] == ["2.wav", "3.wav"]
    assert test.labels.tolist() == [REAL, FAKE]
    assert test.meta["attack"].tolist() == ["bonafide", "hifigan"]
    assert test.meta["speaker"].tolist() == ["bob", "bob"]


def test_csv_manifest_named_relatively_may_mix_absolute_and_relative_paths(tmp_path,
                                                                             monkeypatch):
    _tone(tmp_path / "a.wav")
    _tone(tmp_path / "b.wav")
    (tmp_path / "l.csv").write_text(f"path,label\na.wav,real\n{tmp_path / 'b.wav'},fake\n")
    monkeypatch.chdir(tmp_path)
    listing = open_source("l.csv").listing("testing")
    assert [f.name for f in listing.files] == ["a.wav", "b.wav"]


def test_csv_manifest_errors(tmp_path):
    _tone(tmp_path / "a.wav")
    (tmp_path / "l.csv").write_text("path,label\na.wav,real\na.wav,maybe\n")
    with pytest.raises(LayoutError, match=r"l.csv, line 3: unknown label 'maybe'"):
        open_source(tmp_path / "l.csv")
    (tmp_path / "one.csv").write_text("path,label\na.wav,real\n")
    with pytest.raises(LayoutError, match="only real files"):
        open_source(tmp_path / "one.csv")
    (tmp_path / "cols.csv").write_text("name,class\na.wav,real\n")
    with pytest.raises(LayoutError, match="needs a path .* column and a label column"):
        open_source(tmp_path / "cols.csv")


def test_in_the_wild_folder_is_a_testing_split(tmp_path):
    for i in range(3):
        _tone(tmp_path / f"{i}.wav")
    (tmp_path / "meta.csv").write_text(
        "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n"
        "2.wav,Ayn Rand,bona-fide\n"
    )
    source = open_source(tmp_path)
    assert source.splits() == ["testing"]
    listing = source.listing("test")
    assert listing.labels.tolist() == [FAKE, REAL, REAL]
    assert listing.meta["speaker"].tolist()[-1] == "Ayn Rand"
    with pytest.raises(LayoutError, match="no rows in the training split"):
        source.listing("training")


def test_folders_source_reads_metadata_columns(tmp_path):
    for split in ("training", "testing"):
        _tone(tmp_path / split / "real" / "r.wav")
        _tone(tmp_path / split / "fake" / "f.wav")
    (tmp_path / "metadata.csv").write_text(
        "file,attack,speaker\n"
        + "".join(f"{s}/real/r.wav,bonafide,ann\n{s}/fake/f.wav,vits,ann\n"
                  for s in ("training", "testing"))
    )
    source = open_source(tmp_path)
    assert isinstance(source, FoldersSource)
    listing = source.listing("testing")
    assert listing.labels.tolist() == [REAL, FAKE]
    assert listing.meta["attack"].tolist() == ["bonafide", "vits"]


def test_load_split_decodes_a_manifest_with_its_metadata(tmp_path):
    from lcnn.config import Config
    from lcnn.detector import data

    for i in range(4):
        _tone(tmp_path / "a" / f"{i}.wav", seconds=2.0)
    (tmp_path / "l.csv").write_text(
        "path,label,attack\na/0.wav,real,bonafide\na/1.wav,fake,x\n"
        "a/2.wav,real,bonafide\na/3.wav,fake,y\n"
    )
    clips = data.load_split(tmp_path / "l.csv", "testing", Config(), cache_dir=tmp_path / "c",
                            progress=False)
    assert clips.labels.tolist() == [REAL, FAKE, REAL, FAKE]
    assert clips.meta["attack"].tolist() == ["bonafide", "x", "bonafide", "y"]
    assert clips.audio.shape[0] == 4


def test_train_and_evaluate_from_a_csv_list(tmp_path):
    """`train --data_path list.csv` trains on the rows of the training split and validates on
    the validation rows; evaluate scores the testing rows and reports the attack column."""
    rows = ["path,label,split,attack"]
    for split in ("train", "dev", "test"):
        for i in range(4):
            fake = i % 2
            rows.append(f"{split}/{i}.wav,{'spoof' if fake else 'bonafide'},{split},"
                        f"{'tone' if fake else 'bonafide'}")
            rng = np.random.default_rng(i)
            x = np.sin(np.linspace(0, 300, 8000)) if fake else rng.standard_normal(8000)
            (tmp_path / split).mkdir(exist_ok=True)
            sf.write(tmp_path / split / f"{i}.wav", 0.3 * x / np.abs(x).max(), 16000)
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    lcnn = _lcnn
    r = lcnn("train", "--data_path", tmp_path / "list.csv", "--run_dir", run, "--epochs", "1",
             "--set", "duration=0.5", "--set", "sinc_filters=16", "--quiet")
    assert r.returncode == 0, r.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"] == {"format": "csv", "path": str(tmp_path / "list.csv")}
    # a run folder written before the dataset spec: "data_path" held the path
    del saved["data"]
    (run / "config.json").write_text(json.dumps({**saved, "data_path": str(tmp_path / "list.csv")}))
    r = lcnn("evaluate", "--run_dir", run, "--json")  # on the run's own dataset
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["n_real"], result["n_fake"]) == (2, 2)
    assert set(result["eer_by_attack"]) == {"tone"}
    r = lcnn("train", "--data_path", tmp_path / "missing.csv", "--run_dir", tmp_path / "r2")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "missing.csv" in r.stderr and not (tmp_path / "r2").exists()


def _lcnn(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "lcnn", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def _asvspoof_split(root, name, rows):
    """An ASVspoof 2019 LA-like split: <root>/<name>.txt and <root>/<name>/flac/<FILE>.flac.
    rows: (FILE, ATTACK), ATTACK "-" for bona fide (noise) and an attack name for spoofs
    (tones). Returns the protocol and the audio folder."""
    lines = []
    for i, (file, attack) in enumerate(rows):
        fake = attack != "-"
        x = (np.sin(np.linspace(0, 300 + 40 * i, 8000)) if fake
             else np.random.default_rng(i).standard_normal(8000))
        path = root / name / "flac" / f"{file}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.3 * x / np.abs(x).max(), 16000)
        lines.append(f"LA_{i % 2:04d} {file} - {attack} {'spoof' if fake else 'bonafide'}")
    (root / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return root / f"{name}.txt", root / name / "flac"


TRAIN_ROWS = [("LA_T_1", "-"), ("LA_T_2", "A01"), ("LA_T_3", "-"), ("LA_T_4", "A02")]
DEV_ROWS = [("LA_D_1", "-"), ("LA_D_2", "A01"), ("LA_D_3", "-"), ("LA_D_4", "A02")]
EVAL_ROWS = [("LA_E_1", "-"), ("LA_E_2", "A07"), ("LA_E_3", "A08"), ("LA_E_4", "-"),
             ("LA_E_5", "A07"), ("LA_E_6", "A08")]


def _train_flags(train, dev, run):
    return [str(a) for a in ("train", "--protocol", train[0], "--audio_dir", train[1],
                             "--val_protocol", dev[0], "--val_audio_dir", dev[1],
                             "--run_dir", run)]


def test_protocol_mistakes_are_one_line_naming_the_file(tmp_path, capsys):
    """Missing protocol, missing audio folder, a listed file that is not there, an unknown
    key: each one line on stderr naming the file (and line), exit status 2, no run folder."""
    from lcnn.app.cli import main

    train = _asvspoof_split(tmp_path, "train", TRAIN_ROWS)
    dev = _asvspoof_split(tmp_path, "dev", DEV_ROWS)
    run = tmp_path / "run"
    (tmp_path / "gone.txt").write_text(dev[0].read_text() + "LA_0001 LA_D_9 - A03 spoof\n")
    (tmp_path / "key.txt").write_text(dev[0].read_text() + "LA_0001 LA_D_1 - A03 fake\n")
    cases = {
        (tmp_path / "nope.txt", dev[1]): rf"{tmp_path / 'nope.txt'}: no such protocol file",
        (dev[0], tmp_path / "wav"): rf"{tmp_path / 'wav'}: no such audio folder",
        (tmp_path / "gone.txt", dev[1]): (rf"{tmp_path / 'gone.txt'} \(audio in .*\): 1 listed "
                                          rf"file\(s\) not found: line 5: .*LA_D_9.flac"),
        (tmp_path / "key.txt", dev[1]): (rf"{tmp_path / 'key.txt'}, line 5: expected 'SPEAKER "
                                         r"FILE ... ATTACK KEY' with KEY bonafide or spoof"),
    }
    for val, message in cases.items():
        assert main(_train_flags(train, val, run)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.match(rf"lcnn train: error: {message}", err), err
        assert not run.exists()


def test_train_from_protocols_and_evaluate_by_attack(tmp_path, capsys):
    """train --protocol/--val_protocol reads ASVspoof protocols; evaluate --protocol scores
    another one, with the attack column of the protocol in --by and the score file."""
    from lcnn.app.cli import main

    train = _asvspoof_split(tmp_path, "train", TRAIN_ROWS)
    dev = _asvspoof_split(tmp_path, "dev", DEV_ROWS)
    test = _asvspoof_split(tmp_path, "eval", EVAL_ROWS)
    run = tmp_path / "run"
    r = _lcnn(*_train_flags(train, dev, run), "--epochs", 1, "--threads", 1,
              "--set", "duration=0.5", "--set", "sinc_filters=16", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "evaluate --run_dir" in r.stdout and "--protocol" in r.stdout
    saved = json.loads((run / "config.json").read_text())["data"]
    assert saved["protocols"] == {"training": str(train[0]), "validation": str(dev[0])}
    assert saved["audio_dirs"] == {"training": str(train[1]), "validation": str(dev[1])}

    r = _lcnn("evaluate", "--run_dir", run, "--protocol", test[0], "--audio_dir", test[1],
              "--by", "attack", "--json", "--score_file", tmp_path / "scores.txt")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["n_real"], result["n_fake"]) == (2, 4)
    # per attack (ASVspoof's way): that attack's spoofs against all bona fide clips
    assert {a: (row["n_real"], row["n_fake"]) for a, row in result["by"]["attack"].items()} \
        == {"A07": (2, 2), "A08": (2, 2)}
    rows = [line.split("\t")[:3] for line in
            (tmp_path / "scores.txt").read_text().splitlines()[1:]]
    assert rows == [[f"{f}.flac", "bonafide" if a == "-" else a,
                     "bonafide" if a == "-" else "spoof"] for f, a in EVAL_ROWS]

    # without data flags evaluate reads the run's own protocols: no testing one here
    assert main(["evaluate", "--run_dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no protocol file for the testing split" in err, err
    assert "--protocol FILE --audio_dir DIR" in err


def test_unseen_attacks_are_the_testing_attacks_that_training_lacks():
    import csv
    from pathlib import Path

    from lcnn.dataset import unseen_attacks

    demo = Path(__file__).resolve().parent.parent / "data" / "demo"
    with open(demo / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_split = {s: {r["attack"] for r in rows if r["split"] == s} for s in ("training", "testing")}
    assert unseen_attacks(demo) == sorted(by_split["testing"] - by_split["training"])
    assert unseen_attacks(demo)  # the demo corpus keeps one attack for testing
