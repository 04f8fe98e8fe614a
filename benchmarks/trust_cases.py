"""Issue 27's table: the models whose verdicts could not be trusted, each through the CLI as a user runs it.

For each case: ``convert`` (exit code), the int8 file described (full-integer? XNNPACK? each input's source shape
and layout -> the .tflite's), then ``verify`` on held-out data (exit code, the task metric int8 vs float, the
verdict); the detector goes through ``recover``.  The cases are the tests' own instances (tests/models.py): a Keras
channels-last input, a VAD with a rank-0 sample rate and a ``[2, 1, H]`` state, a BERT-style encoder with int64
token ids, an opset-12 LSTM, an STFT written as Conv, a YOLOv8-style ``[1, 4+nc, N]`` head; with ``--mobilenet`` also
MobileNetV2 quantized by ONNX Runtime's ``quantize_static`` (QDQ; about 5 minutes more).

    .venv/bin/python -m benchmarks.trust_cases [--out DIR] [--only NAME ...] [--mobilenet]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.model_kinds import _cli, _split_photos, measure


def _keras(d: Path) -> dict[str, Any]:
    from tests.models import keras_nhwc_onnx

    keras_nhwc_onnx(d / "keras.onnx")
    rng, colour = np.random.default_rng(0), np.array([1.5, -1.0, 0.5])
    for name, n in (("keras_calib", 64), ("keras_held", 32)):
        np.save(d / f"{name}.npy", (rng.standard_normal((n, 16, 16, 3)) + colour).astype(np.float32))
    return {"kind": "Keras/tf2onnx channels-last input [N, 16, 16, 3]", "model": str(d / "keras.onnx"),
            "convert": ["--data", str(d / "keras_calib.npy")], "verify": ["--data", str(d / "keras_held.npy")]}


def _vad(d: Path) -> dict[str, Any]:
    from tests.models import vad_onnx

    vad_onnx(d / "vad.onnx")
    rng = np.random.default_rng(0)
    for name, n in (("vad_calib", 64), ("vad_held", 32)):
        np.savez(d / f"{name}.npz", x=rng.standard_normal((n, 32)).astype(np.float32),
                 state=(rng.standard_normal((n, 2, 1, 8)) * 0.5).astype(np.float32))
    return {"kind": "VAD: audio [1, 32], state [2, 1, 8], rank-0 int64 sr", "model": str(d / "vad.onnx"),
            "convert": ["--data", str(d / "vad_calib.npz"), "--input-value", "sr=16000"],
            "verify": ["--data", str(d / "vad_held.npz")]}


def _encoder(d: Path) -> dict[str, Any]:
    from tests.models import tiny_encoder_onnx, token_batch

    np.savez(d / "tokens_calib.npz", **token_batch(64, seed=0))
    np.savez(d / "tokens_held.npz", **token_batch(32, seed=1))
    tiny_encoder_onnx(d / "encoder.onnx")
    return {"kind": "BERT-style encoder, int64 input_ids/attention_mask [1, 16]", "model": str(d / "encoder.onnx"),
            "convert": ["--data", str(d / "tokens_calib.npz")],
            "verify": ["--data", str(d / "tokens_held.npz"), "--task", "raw"]}


def _lstm12(d: Path, calib: str, held: str) -> dict[str, Any]:
    import torch

    from tests.models import SEQ_SPEC, lstm_classifier

    torch.onnx.export(lstm_classifier(), (torch.zeros(1, 1, 8, 24),), str(d / "lstm12.onnx"), opset_version=12,
                      input_names=["x"], output_names=["y"], dynamo=False)
    spec = ["--resize", SEQ_SPEC.resize, "--channels", SEQ_SPEC.channels,
            "--mean", ",".join(map(str, SEQ_SPEC.mean)), "--std", ",".join(map(str, SEQ_SPEC.std))]
    return {"kind": "LSTM classifier exported at opset 12", "model": str(d / "lstm12.onnx"),
            # its input goes into a Reshape: the graph does not say its layout, so it is declared
            "convert": ["--data", calib, "--views", "4", "--input-layout", "x:NCHW", *spec],
            "verify": ["--data", held, "--views", "4"]}


def _stft(d: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    for name, n in (("wave_calib", 64), ("wave_held", 32)):
        np.save(d / f"{name}.npy", rng.standard_normal((n, 256)).astype(np.float32))
    return {"kind": "STFT written as Conv (DFT basis, slices, magnitude)", "model": "tests.models:stft_front_end",
            "convert": ["--data", str(d / "wave_calib.npy")], "verify": ["--data", str(d / "wave_held.npy")]}


def rows(work: Path) -> dict[str, dict[str, Any]]:
    from tflite_int8.data.readers import default_data_dir

    d = work / "data"
    d.mkdir(parents=True, exist_ok=True)
    calib, held = _split_photos(default_data_dir(), d)
    return {"keras_nhwc": _keras(d), "vad_state_sr": _vad(d), "int64_encoder": _encoder(d),
            "lstm_opset12": _lstm12(d, calib, held), "stft_conv": _stft(d),
            "yolov8_head": {"kind": "YOLOv8-style head [1, 4+nc, N] through recover",
                            "model": "tests.models:tiny_detector_v8", "recover": True,
                            "convert": ["--data", calib, "--verify-data", held, "--strategies", "baseline"]}}


def layouts(out: Path) -> str:
    """Each input: source shape (layout) -> the .tflite's shape; from conversion.json."""
    path = out / "conversion.json"
    if not path.is_file():
        return "-"
    cells = []
    for i in json.loads(path.read_text()).get("inputs", []):
        src = f"{i['shape']}" + (f" {i['layout']}" if i.get("layout") else "")
        dtype = f" {i['dtype']}" if i.get("dtype", "float32") != "float32" else ""
        cells.append(f"{i['name']}{dtype} {src} -> {i['tflite_shape']}")
    return "; ".join(cells)


def recovered(name: str, row: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """The detector through ``recover`` twice: as the user first runs it (--task auto), then with --task detect."""
    out = []
    for task in ("auto", "detect"):
        folder = work / f"{name}_{task}"
        code, secs, last = _cli("recover", row["model"], "-o", str(folder), "--force", "--task", task, *row["convert"])
        rec = json.loads((folder / "recovery.json").read_text()) if (folder / "recovery.json").is_file() else {}
        base = (rec.get("attempts") or [{}])[0]
        metric = base.get("decided_by") or last
        out.append({"model": f"{name} (recover --task {task})", "kind": row["kind"], "convert_exit": code,
                    "convert_s": round(secs, 1), "recover": True, "decided_by": metric,
                    "passed": rec.get("passed"), "winner": rec.get("winner"),
                    "box_agreement": base.get("box_agreement"), "cosine": base.get("mean_cosine"),
                    "layouts": layouts(folder / "baseline"), "stopped": rec.get("stopped")})
    return out


def mobilenet_qdq(work: Path) -> dict[str, Any]:
    """MobileNetV2 quantized by ONNX Runtime's quantize_static (QDQ, per-channel, int8 activations) on the even
    photos; converted and verified on the odd ones: int8 and the simulation, each against the float model."""
    from tests.test_pretrained_qdq import _ort_quantized
    from tflite_int8.data.images import list_images
    from tflite_int8.data.readers import default_data_dir
    from tflite_int8.zoo.models import mobilenet_v2

    photos = list_images(default_data_dir()).paths
    d = work / "mnv2"
    d.mkdir(parents=True, exist_ok=True)
    calib, held = _split_photos(default_data_dir(), d)
    qdq = _ort_quantized(d, photos[0::2], mobilenet_v2.preprocess_spec)
    spec = ["--preset", "mobilenet-v2"]
    row = {"kind": "MobileNetV2 QDQ from onnxruntime quantize_static", "model": str(qdq),
           "convert": ["--data", calib, "--views", "2", *spec], "verify": ["--data", held, "--views", "5"]}
    result = measure("mobilenet_v2_qdq", row, work)
    rep = work / "mobilenet_v2_qdq" / "verify" / "report.json"
    if rep.is_file():
        logits = json.loads(rep.read_text()).get("qat_check", {}).get("outputs", {}).get("logits", {})
        q, sim = logits.get("int8_vs_float", {}), logits.get("simulation_vs_float", {})
        result["qat"] = (f"top-1 vs float: int8 {q.get('top1_agreement', 0):.1%} / simulation "
                         f"{sim.get('top1_agreement', 0):.1%}; cosine {q.get('cosine', 0):.4f} / "
                         f"{sim.get('cosine', 0):.4f}; logits within 1 step end to end "
                         f"{logits.get('within_1_step', 0):.1%} (reported, not judged)")
    result["layouts"] = layouts(work / "mobilenet_v2_qdq")
    return result


def silero_vad(work: Path) -> dict[str, Any]:
    """The real Silero VAD (PyPI silero-vad, its opset-15 16 kHz ONNX): espeak-ng speech (tflite_int8.zoo.speech),
    converted and verified by the CLI; and its speech/non-speech decisions, int8 vs float, frame by frame and
    streamed (the int8 file fed its own state)."""
    from importlib.resources import files

    from tflite_int8.zoo.speech import HOP, RATE, vad_frames
    from tflite_int8 import Runner

    model = Path(str(files("silero_vad") / "data" / "silero_vad_16k_op15.onnx"))
    d = work / "silero_data"
    d.mkdir(parents=True, exist_ok=True)
    float_probs = vad_frames(model, d)["held"]
    row = {"kind": "Silero VAD (PyPI silero-vad): STFT as Conv, LSTM, state [2, 1, 128], rank-0 sr",
           "model": str(model),
           "convert": ["--data", str(d / "calib.npz"), "--input-value", f"sr={RATE}", "--input-shape",
                       f"input:1x{HOP + 64}", "--input-shape", "state:2x1x128"],
           "verify": ["--data", str(d / "held.npz")]}
    result = measure("silero_vad", row, work) | {"layouts": layouts(work / "silero_vad")}
    int8 = work / "silero_vad" / "model_int8.tflite"
    if int8.is_file():
        held, runner = np.load(d / "held.npz"), Runner(int8, layout="source")
        framed = [runner.feed({"input": x[None], "state": s})["output"].item() for x, s in zip(held["input"],
                                                                                               held["state"])]
        state, streamed = held["state"][0], []
        for x in held["input"]:
            out = runner.feed({"input": x[None], "state": state})
            streamed.append(out["output"].item())
            state = out["stateN"]
        agree = [float(np.mean((np.array(p) > 0.5) == (float_probs > 0.5))) for p in (framed, streamed)]
        result["vad"] = (f"speech decisions agree on {agree[0]:.1%} of {len(framed)} frames ({agree[1]:.1%} "
                         f"streamed); probability mean abs diff {np.mean(np.abs(np.array(framed) - float_probs)):.3f}")
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = ("| case | kind | exit (convert/recover) | full-integer | XNNPACK | inputs: source -> .tflite | "
            "task metric, int8 vs float | verify exit | verdict |\n|---|---|---|---|---|---|---|---|---|")
    yes = {True: "yes", False: "**no**", None: "-"}
    lines = [head]
    for r in results:
        if r.get("recover"):
            metric = f"{r['decided_by']}" + (f"; box agreement {r['box_agreement']:.3f}"
                                             if r.get("box_agreement") is not None else "")
            verdict = f"{'PASSED' if r['passed'] else 'FAILED'} (winner {r.get('winner')})"
        else:
            if r.get("qat") or r.get("vad"):
                metric = r.get("qat") or (f"{r['vad']}; {r['task']}: cosine {r['cosine']:.4f}, "
                                          f"SQNR {r['sqnr_db']:.1f} dB")
            elif r.get("value") is not None:
                metric = f"{r['task']}: {r['metric']} {r['value']:.3f}"
            elif r.get("cosine") is not None:
                metric = f"{r['task']}: cosine {r['cosine']:.4f}, SQNR {r['sqnr_db']:.1f} dB"
            else:
                metric = r.get("error") or r.get("verify_error") or "-"
            verdict = {True: "PASSED", False: "FAILED", None: "-"}[r.get("passed")]
        lines.append(f"| {r['model']} | {r['kind']} | {r['convert_exit']} | {yes[r.get('full_integer')]} | "
                     f"{yes[r.get('xnnpack')]} | {r.get('layouts', '-')} | {metric} | {r.get('verify_exit', '-')} | "
                     f"{verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="keep the conversions here (default: a temporary folder)")
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    ap.add_argument("--mobilenet", action="store_true", help="also MobileNetV2 from quantize_static (~5 min)")
    ap.add_argument("--silero", action="store_true", help="also the real Silero VAD (needs espeak-ng; ~3 min)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results: list[dict[str, Any]] = []
        for name, row in rows(work).items():
            if args.only and name not in args.only:
                continue
            if row.get("recover"):
                results += recovered(name, row, work)
            else:
                results.append(measure(name, row, work) | {"layouts": layouts(work / name)})
            print(json.dumps(results[-1], default=str), file=sys.stderr, flush=True)
        if args.mobilenet:
            results.append(mobilenet_qdq(work))
        if args.silero:
            results.append(silero_vad(work))
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
