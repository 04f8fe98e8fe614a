"""Speech for the audio tests and benchmarks, offline: sentences spoken by Debian's ``espeak-ng`` (apt-get install espeak-ng),
at 16 kHz, with pauses and noise between them; streamed through Silero VAD (PyPI ``silero-vad``) as its own wrapper
streams it: 512 new samples per frame after 64 of context (576), the LSTM state carried from frame to frame.

``vad_frames`` writes ``calib.npz`` / ``held.npz`` ({input: (N, 576), state: (N, 2, 1, 128)}) with different
sentences and voices, and returns the float model's speech probability per frame.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

SENTENCES = ("The quick brown fox jumps over the lazy dog.", "Int eight models should still work on the phone.",
             "Please verify the conversion before you ship it.", "One two three four five six seven eight nine ten.",
             "Speech detection runs on every audio frame.", "The weather today is cloudy with a chance of rain.")
SPLITS = {"calib": (SENTENCES[:3], ("en", "en-us"), 1), "held": (SENTENCES[3:], ("en-gb", "en+f3"), 2)}
RATE, HOP, CONTEXT = 16000, 512, 64


def say(text: str, voice: str) -> np.ndarray:
    """``text`` spoken by espeak-ng, float32 at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        raise InputError("speech needs Debian's espeak-ng (setup.sh installs it as root): apt-get install espeak-ng")
    raw = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    return np.interp(np.arange(0, len(audio), rate / RATE), np.arange(len(audio)), audio).astype(np.float32)


def _audio(texts: tuple[str, ...], voices: tuple[str, ...], seed: int) -> np.ndarray:
    rng, parts = np.random.default_rng(seed), []
    for text in texts:
        for voice in voices:
            parts += [say(text, voice) * rng.uniform(0.3, 1), np.full(int(rng.uniform(0.2, 0.6) * RATE), 0.003,
                                                                      np.float32),
                      (0.02 * rng.standard_normal(int(0.3 * RATE))).astype(np.float32)]
    return np.concatenate(parts)


def stream(session: Any, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (N, 576), states (N, 2, 1, 128), probabilities (N,)): Silero VAD's own streaming."""
    frames, states, probs = [], [], []
    state, context = np.zeros((2, 1, 128), np.float32), np.zeros(CONTEXT, np.float32)
    for i in range(0, len(audio) - HOP, HOP):
        x = np.concatenate([context, audio[i:i + HOP]])[None]
        frames.append(x[0])
        states.append(state)
        p, state = session.run(None, {"input": x, "state": state, "sr": np.array(RATE, np.int64)})
        probs.append(float(p[0, 0]))
        context = audio[i + HOP - CONTEXT:i + HOP]
    return np.array(frames, np.float32), np.array(states, np.float32), np.array(probs)


def vad_frames(model: Path, out: Path) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model))
    probs = {}
    for split, (texts, voices, seed) in SPLITS.items():
        frames, states, probs[split] = stream(session, _audio(texts, voices, seed))
        np.savez(out / f"{split}.npz", input=frames, state=states)
    return probs
