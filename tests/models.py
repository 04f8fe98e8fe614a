"""Tiny PyTorch models for the unit tests (seconds to convert)."""
from __future__ import annotations

import os
import signal

import torch
from torch import nn

from tflite_int8.config.preprocess import PreprocessSpec

TINY_SPEC = PreprocessSpec(size=(32, 32), resize="stretch")


class TinyNet(nn.Module):
    """Conv/BN/SiLU/ReLU6/Concat/Upsample/Linear: every op family the pipeline must carry."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.SiLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6())
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Linear(24, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stem(x)
        b = self.branch(a)
        c = torch.cat([a, b], dim=1)
        d = self.up(self.down(c))
        feat = torch.cat([d, b], dim=1).mean(dim=(2, 3))
        return self.head(feat)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():  # non-trivial BN statistics, so folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


tiny.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]
TINY_CLASSES = ("circle", "square", "triangle", "star", "ring", "cross", "arrow", "heart", "moon", "drop")
tiny.class_names = TINY_CLASSES  # type: ignore[attr-defined]  # verify finds them, as for the zoo's models


class KillsItsWorkerOnce(nn.Module):
    """tiny(), except that its first forward in a process other than the one that built it kills that process
    (SIGKILL), once per ``marker`` file: a worker lost in the middle of its shard."""

    def __init__(self, marker: str):
        super().__init__()
        self.net = tiny()
        self.marker = str(marker)
        self.home = os.getpid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.getpid() != self.home:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)


def swallows_interrupt() -> nn.Module:
    """tiny(), built while a Ctrl-C arrives inside embedded code that swallows it, as a bare ``except:`` around
    an import or pybind11's ``py::exec`` would (PyRun_SimpleString also sets CPython's unhandled-Ctrl-C flag)."""
    import ctypes

    ctypes.pythonapi.PyRun_SimpleString(b"import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
                                        b"for _ in range(10 ** 7): pass\n")
    return tiny()


swallows_interrupt.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(self.conv(x))
        return y, self.fc(y.mean(dim=(2, 3)))


def two_outputs() -> nn.Module:
    torch.manual_seed(1)
    return TwoOutputs().eval()


def not_a_module() -> int:
    return 3


class SpatialNet(nn.Module):
    """Logits that follow the image content (no global pooling): a wrong input range shows in the outputs."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(4)
        self.head = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(torch.relu(self.conv(x))).flatten(1))


def spatial() -> nn.Module:
    torch.manual_seed(2)
    return SpatialNet().eval()


spatial.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]


class TinyDetector(nn.Module):
    """A one-scale YOLOv5-style head (sigmoid, split, grid/anchor math, concat), exported the way YOLOv5 does.

    ``layout="v5"``: [1, 48, 7] = (x, y, w, h in pixels, objectness, 2 class scores);
    ``layout="v8"``: [1, 6, 48] = (x, y, w, h, objectness x class).
    """

    def __init__(self, layout: str = "v5"):
        super().__init__()
        self.layout = layout
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.SiLU(),
                                  nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU())
        self.head = nn.Conv2d(16, 3 * 7, 1)
        self.register_buffer("anchors", torch.tensor([[6.0, 6.0], [10.0, 8.0], [8.0, 12.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.head(self.body(x))
        b, _, ny, nx = p.shape
        p = p.view(b, 3, 7, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
        yv, xv = torch.meshgrid(torch.arange(ny, dtype=p.dtype), torch.arange(nx, dtype=p.dtype), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
        xy, wh, conf = p.sigmoid().split((2, 2, 3), 4)
        xy = (xy * 2 + grid) * 8.0
        wh = (wh * 2) ** 2 * self.anchors.view(1, 3, 1, 1, 2)
        y = torch.cat((xy, wh, conf), 4).view(b, -1, 7)
        if self.layout == "v8":
            return torch.cat((y[..., :4], y[..., 5:] * y[..., 4:5]), 2).permute(0, 2, 1)
        return y


def tiny_detector() -> nn.Module:
    torch.manual_seed(0)
    return TinyDetector("v5").eval()


def tiny_detector_v8() -> nn.Module:
    torch.manual_seed(0)
    return TinyDetector("v8").eval()


tiny_detector.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]
tiny_detector_v8.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]


# -- inputs of any number and rank (issue 18): each converts full-integer from its own kind of data --------

class TwoInputs(nn.Module):
    """An image and a feature vector (e.g. a crop and its metadata): ``forward(image, feats)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(32, 5)

    def forward(self, image: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.conv(image).mean(dim=(2, 3)), self.fc(feats)], dim=1))


def two_inputs() -> nn.Module:
    torch.manual_seed(3)
    return TwoInputs().eval()


class Audio1d(nn.Module):
    """Raw audio ``[1, 1, L]`` -> 4 class logits (strided Conv1d, mean over time)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(1, 8, 9, stride=4, padding=4), nn.ReLU(),
                                  nn.Conv1d(8, 16, 9, stride=4, padding=4), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(wave).mean(dim=2))


def audio() -> nn.Module:
    torch.manual_seed(4)
    return Audio1d().eval()


class StftFrontEnd(nn.Module):
    """Raw audio ``[1, L]`` -> 2 logits through an STFT written as Conv, the way Silero VAD has it: reflect pad, a
    Conv1d whose weight is a fixed windowed cos/-sin DFT basis ``[2F, 1, n_fft]`` (stride = hop), the real and
    imaginary halves sliced on the channel and time axes (onnxslim merges them into one Slice per half, axes
    [1, 2]), the magnitude, then a Conv1d and a Linear."""

    def __init__(self, n_fft: int = 64, hop: int = 32) -> None:
        super().__init__()
        self.n_fft, self.hop, self.bins = n_fft, hop, n_fft // 2 + 1
        k, n = torch.arange(self.bins)[:, None], torch.arange(n_fft)[None]
        window = torch.hann_window(n_fft, periodic=True)
        angle = 2 * torch.pi * k * n / n_fft
        self.register_buffer("basis", torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None])
        self.enc = nn.Conv1d(self.bins, 16, 3, padding=1)
        self.head = nn.Linear(16, 2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(wave.unsqueeze(1), (0, self.n_fft // 4), mode="reflect")
        y = nn.functional.conv1d(x, self.basis, stride=self.hop)
        frames = y.shape[2]
        re, im = y[:, :self.bins, 0:frames], y[:, self.bins:, 0:frames]
        return self.head(torch.relu(self.enc(torch.sqrt(re ** 2 + im ** 2))).mean(dim=2))


def stft_front_end() -> nn.Module:
    torch.manual_seed(5)
    return StftFrontEnd().eval()


class Tabular(nn.Module):
    """``[1, 32]`` features -> 3 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


def tabular() -> nn.Module:
    torch.manual_seed(5)
    return Tabular().eval()


class SequenceNet(nn.Module):
    """``[1, 50, 40]`` (time, features) -> ``[1, 50, 6]`` per-step logits: Linear, Conv1d over time, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(40, 32)
        self.conv = nn.Conv1d(32, 32, 5, padding=2)
        self.out = nn.Linear(32, 6)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.embed(frames))
        h = torch.relu(self.conv(h.transpose(1, 2))).transpose(1, 2)
        return self.out(h)


def sequence() -> nn.Module:
    torch.manual_seed(6)
    return SequenceNet().eval()


class FaceBoxes(nn.Module):
    """A face-cascade stage (24x24 crop): named outputs ``box`` [1, 4], ``landmarks`` [1, 10], ``prob`` [1, 2]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(32 * 6 * 6, 64), nn.ReLU())
        self.box, self.landmarks, self.prob = nn.Linear(64, 4), nn.Linear(64, 10), nn.Linear(64, 2)

    def forward(self, crop: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.fc(self.body(crop))
        return {"box": self.box(h), "landmarks": self.landmarks(h), "prob": torch.softmax(self.prob(h), dim=1)}


def face_boxes() -> nn.Module:
    torch.manual_seed(7)
    return FaceBoxes().eval()


class QatNet(nn.Module):
    """A small classifier written for torch.ao eager-mode QAT: quant/dequant stubs, Conv-BN-ReLU blocks to fuse,
    a residual add through FloatFunctional, max pooling, global average pooling, a linear head."""

    def __init__(self, classes: int = 4):
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.c1, self.b1, self.r1 = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.c2, self.b2, self.r2 = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU()
        self.add = torch.ao.nn.quantized.FloatFunctional()
        self.c3, self.b3, self.r3 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.r1(self.b1(self.c1(self.quant(x))))
        b = self.add.add(a, self.r2(self.b2(self.c2(a))))
        c = self.pool(self.r3(self.b3(self.c3(b))))
        return self.dequant(self.fc(torch.flatten(self.gap(c), 1)))


def quadrant_batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated 32x32 images (normalized) whose class is the quadrant holding a bright square."""
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.randn(n, 3, 32, 32, generator=gen) * 0.5
    for i, k in enumerate(y.tolist()):
        r, c = 2 + 16 * (k // 2), 2 + 16 * (k % 2)
        x[i, :, r:r + 10, c:c + 10] += 2.0
    return x, y


def qat_tiny(float_steps: int = 40, qat_steps: int = 30, qconfig=None) -> nn.Module:
    """QatNet trained here on generated data, then fine-tuned with eager-mode torch.ao QAT (fused Conv-BN-ReLU;
    ``qconfig``: PyTorch's onednn one by default, uint8 activations, per-channel int8 weights); returned in eval
    mode with its fake-quant modules."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = QatNet().train()
    for steps, lr in ((float_steps, 1e-2), (qat_steps, 1e-3)):
        if lr < 1e-2:
            torch.ao.quantization.fuse_modules_qat(model, [["c1", "b1", "r1"], ["c2", "b2", "r2"], ["c3", "b3", "r3"]],
                                                   inplace=True)
            model.qconfig = qconfig or torch.ao.quantization.get_default_qat_qconfig("onednn")
            torch.ao.quantization.prepare_qat(model, inplace=True)
        _fit(model, steps, lr, gen)
    return model.eval()


qat_tiny.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]


def _fit(model: nn.Module, steps: int, lr: float, gen: torch.Generator) -> None:
    """``steps`` Adam steps on batches of 32 generated quadrant images."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x, y = quadrant_batch(32, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


class TfliteQatNet(nn.Module):
    """A small MobileNetV2-like classifier for FX-mode QAT: Conv-BN-ReLU6, a depthwise Conv-BN-ReLU6 whose filters
    start with weights of one sign (half the channels all positive, half all negative), a pointwise Conv-BN, a
    residual add, average pooling and a linear head."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(8 * 4 * 4, classes)
        with torch.no_grad():
            w = self.dw[0].weight
            w.copy_(w.abs() * torch.tensor([1.0, -1.0] * 4).view(8, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c1(x)
        b = a + self.pw(self.dw(a))
        return self.fc(torch.flatten(self.pool(b), 1))


def tflite_qat_tiny(float_steps: int = 40, qat_steps: int = 30) -> nn.Module:
    """TfliteQatNet trained here, then prepared with tflite_int8's TFLite-matched FX QAT setup
    (tflite_int8.prepare_qat_fx) and fine-tuned; in eval mode, fake-quant attached."""
    from tflite_int8 import prepare_qat_fx

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = TfliteQatNet().train()
    for steps, lr in ((float_steps, 1e-2), (qat_steps, 1e-3)):
        if lr < 1e-2:
            model = prepare_qat_fx(model, (quadrant_batch(1, gen)[0],))
        _fit(model, steps, lr, gen)
    return model.eval()


tflite_qat_tiny.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]


def qdq_onnx(path, stacked: bool = False):
    """A hand-built QDQ ONNX in ONNX Runtime's static-quantization layout: int8 weight initializers behind
    DequantizeLinear (per channel for the conv), uint8 activations through QuantizeLinear/DequantizeLinear.
    ``stacked``: every activation fake-quantized twice (a second set of fake-quant on top of the first)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a, n) for n, a in {
        "w1_q": rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8),
        "w1_s": (rng.uniform(0.5, 1.5, 8) * 0.004).astype(np.float32), "w1_z": np.zeros(8, np.int8),
        "b1": rng.normal(0, 0.1, 8).astype(np.float32),
        "w2_q": rng.integers(-127, 128, (4, 8)).astype(np.int8), "w2_s": np.array(0.01, np.float32),
        "w2_z": np.array(0, np.int8), "b2": rng.normal(0, 0.1, 4).astype(np.float32),
        "a0_s": np.array(0.02, np.float32), "a0_z": np.array(128, np.uint8),
        "a1_s": np.array(0.01, np.float32), "a1_z": np.array(0, np.uint8),
        "a2_s": np.array(0.004, np.float32), "a2_z": np.array(0, np.uint8),
        "a3_s": np.array(0.005, np.float32), "a3_z": np.array(120, np.uint8)}.items()]

    def fq(x: str, k: int) -> list:
        pair = [helper.make_node("QuantizeLinear", [x, f"a{k}_s", f"a{k}_z"], [f"{x}_q"]),
                helper.make_node("DequantizeLinear", [f"{x}_q", f"a{k}_s", f"a{k}_z"], [f"{x}_dq"])]
        if stacked:
            pair += [helper.make_node("QuantizeLinear", [f"{x}_dq", f"a{k}_s", f"a{k}_z"], [f"{x}_q2"]),
                     helper.make_node("DequantizeLinear", [f"{x}_q2", f"a{k}_s", f"a{k}_z"], [f"{x}_dq2"])]
        return pair

    def out(x: str) -> str:
        return f"{x}_dq2" if stacked else f"{x}_dq"

    nodes = fq("x", 0) + [
        helper.make_node("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], axis=0),
        helper.make_node("Conv", [out("x"), "w1", "b1"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"])] + fq("r", 1) + [
        helper.make_node("GlobalAveragePool", [out("r")], ["p"]), helper.make_node("Flatten", ["p"], ["f"])] + \
        fq("f", 2) + [
        helper.make_node("DequantizeLinear", ["w2_q", "w2_s", "w2_z"], ["w2"]),
        helper.make_node("Gemm", [out("f"), "w2", "b2"], ["g"], transB=1)] + fq("g", 3) + [
        helper.make_node("Identity", [out("g")], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


# ---- one tiny instance of each model kind mobile engineers bring (tests/test_model_kinds.py) -------------------

LINE_SPEC = PreprocessSpec(size=(16, 32), resize="stretch", channels="L", mean=(0.5,), std=(0.25,))
SEQ_SPEC = PreprocessSpec(size=(8, 24), resize="stretch", channels="L", mean=(0.5,), std=(0.25,))
FACE_SPEC = PreprocessSpec(size=(27, 27), resize="stretch", mean=(0.5,), std=(0.5,))  # odd: ceil_mode matters
PATCH_SPEC = PreprocessSpec(size=(16, 16), resize="stretch")


class CTCRecognizer(nn.Module):
    """Conv features, a GRU over the 8 columns (``recurrent``), per-column log-probabilities of blank + 5 symbols:
    [1, 8, 6].  ``gain`` scales the logits: large gives confident, int8-stable text; tiny gives near-uniform
    log-probabilities whose cosine stays ~1 while the argmax (the text) flips under int8."""

    def __init__(self, gain: float = 8.0, recurrent: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.rnn = nn.GRU(16, 12, batch_first=True) if recurrent else None
        self.head = nn.Linear(12 if recurrent else 16, 6)
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x).mean(dim=2).permute(0, 2, 1)  # [1, T=8, 16]
        if self.rnn is not None:
            y, _ = self.rnn(y)
        return torch.log_softmax(self.head(y) * self.gain, dim=-1)


def ctc_recognizer() -> nn.Module:
    torch.manual_seed(3)
    return CTCRecognizer().eval()


def ctc_fragile() -> nn.Module:
    torch.manual_seed(3)
    return CTCRecognizer(gain=0.02, recurrent=False).eval()


class LSTMClassifier(nn.Module):
    """A sequence classifier: the 8 image rows as time steps of 24 features, an LSTM, the last step's class."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(24, 16, batch_first=True)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x.reshape(1, 8, 24))
        return self.head(y[:, -1])


def lstm_classifier() -> nn.Module:
    torch.manual_seed(4)
    return LSTMClassifier().eval()


class CeilPoolNet(nn.Module):
    """MTCNN-PNet-like: PReLU, MaxPool and AvgPool with ceil_mode=True on odd sizes (the -inf pad trap)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 10, 3), nn.PReLU(10), nn.MaxPool2d(2, 2, ceil_mode=True),
                                  nn.Conv2d(10, 16, 3), nn.PReLU(16), nn.AvgPool2d(3, 2, ceil_mode=True),
                                  nn.Conv2d(16, 32, 3), nn.PReLU(32))
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.body(x).mean(dim=(2, 3))) * 5.0, dim=1)


def ceil_pool_net() -> nn.Module:
    torch.manual_seed(5)
    return CeilPoolNet().eval()


class GeluBlock(nn.Module):
    """A DeiT-style block: patch embedding, class token, attention (nn.MultiheadAttention), an MLP with PyTorch's
    default (erf) GELU, the class token's logits."""

    def __init__(self, dim: int = 24, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.cat([self.cls, self.embed(x).flatten(2).transpose(1, 2)], dim=1)
        h = self.norm1(t)
        t = t + self.attn(h, h, h, need_weights=False)[0]
        t = t + self.mlp(self.norm2(t))
        return self.head(t[:, 0])


def gelu_block() -> nn.Module:
    torch.manual_seed(6)
    return GeluBlock().eval()


class Segmenter(nn.Module):
    """Encoder-decoder to per-pixel logits of 4 classes at the input size: [1, 4, 32, 32]."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.up = nn.Sequential(nn.Upsample(scale_factor=4, mode="bilinear"), nn.Conv2d(16, 4, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x)) * 3.0


def segmenter() -> nn.Module:
    torch.manual_seed(7)
    return Segmenter().eval()


class TextDetector(nn.Module):
    """DBNet-like: features, a transposed-conv upsampling, a sigmoid probability map [1, 1, 32, 32]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(),
                                  nn.ConvTranspose2d(8, 4, 2, 2), nn.ReLU(), nn.Conv2d(4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(x) * 4.0)


def text_detector() -> nn.Module:
    torch.manual_seed(8)
    return TextDetector().eval()


class ClampNet(nn.Module):
    """A Clip(0, 1) (TFLite RELU_0_TO_1, which the int16x8 converter refuses) on an image head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.clamp(self.conv(x), 0.0, 1.0).mean(dim=(2, 3)))


def clamp_net() -> nn.Module:
    torch.manual_seed(10)
    return ClampNet().eval()


class CancellingNet(nn.Module):
    """Its output (~1) is the difference of two tensors of ~300: right in float, noise in int8 (steps of ~2)."""

    def __init__(self) -> None:
        super().__init__()
        self.big, self.small = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = self.big(x) * 300.0
        return (big - (big - self.small(x))).mean(dim=(2, 3))


def cancelling() -> nn.Module:
    torch.manual_seed(9)
    return CancellingNet().eval()


# -- integer inputs (issue 27): token ids and an attention mask, int64 in ONNX ------------------------------

TEXT_VOCAB, TEXT_LEN = 100, 16


class TinyEncoder(nn.Module):
    """A BERT-style sentence encoder: ``forward(input_ids, attention_mask)`` (int64 ``[1, 16]``) -> a 32-d
    embedding (token + position embeddings, LayerNorm, ``layers`` self-attention blocks over the unmasked tokens
    with a GELU feed-forward, mean pooling over the mask).

    int8-minded where BERT exports are not: the padding's additive mask is -10 (exp(-10) ~ 5e-5), not -1e4, which
    would take the scores' whole int8 range; the mean's 1/count is looked up (a Gather indexed by the integer
    token count) instead of divided by: TFLite has no int8 DIV, a division stays float."""

    def __init__(self, vocab: int = TEXT_VOCAB, length: int = TEXT_LEN, hidden: int = 32, heads: int = 2,
                 layers: int = 1) -> None:
        super().__init__()
        self.heads = heads
        self.tokens = nn.Embedding(vocab, hidden)
        self.positions = nn.Parameter(torch.randn(1, length, hidden) * 0.5)
        self.norm = nn.LayerNorm(hidden)
        self.qkv = nn.ModuleList(nn.Linear(hidden, 3 * hidden) for _ in range(layers))
        self.proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.norm1 = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.ffn = nn.ModuleList(nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(approximate="tanh"),
                                               nn.Linear(2 * hidden, hidden)) for _ in range(layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.register_buffer("inverse_count", torch.tensor([0.0] + [1.0 / k for k in range(1, length + 1)]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32)  # [1, S]
        h = self.norm(self.tokens(input_ids) + self.positions)
        for qkv, proj, n1, ffn, n2 in zip(self.qkv, self.proj, self.norm1, self.ffn, self.norm2):
            h = n1(h + proj(self._attend(qkv(h), (mask - 1.0) * 10.0)))
            h = n2(h + ffn(h))
        return (h * mask[:, :, None]).sum(dim=1) * self.inverse_count[attention_mask.sum(dim=1)][:, None]

    def _attend(self, qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, three_d = qkv.shape
        d = three_d // 3
        q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in qkv.split(d, dim=2))
        weights = torch.softmax(q @ k.transpose(2, 3) / (d // self.heads) ** 0.5 + bias[:, None, None, :], dim=-1)
        return (weights @ v).transpose(1, 2).reshape(b, s, d)


def tiny_encoder() -> nn.Module:
    torch.manual_seed(11)
    return TinyEncoder().eval()


def tiny_encoder_onnx(path) -> None:
    """:func:`tiny_encoder` exported to ONNX as sentence encoders ship: int64 ``input_ids`` / ``attention_mask``
    [1, 16] with a dynamic batch, output ``embedding``."""
    ids = {k: torch.from_numpy(v[:1]) for k, v in token_batch(1).items()}
    torch.onnx.export(tiny_encoder(), (ids["input_ids"], ids["attention_mask"]), str(path),
                      input_names=["input_ids", "attention_mask"], output_names=["embedding"], opset_version=17,
                      dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}}, dynamo=False)


def token_batch(n: int, seed: int = 0) -> dict:
    """``n`` random sentences for :class:`TinyEncoder`: int64 ids (0 = padding) and masks, 4 to 16 tokens each."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, TEXT_LEN + 1, size=n)
    mask = (np.arange(TEXT_LEN)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, TEXT_VOCAB, size=(n, TEXT_LEN)).astype(np.int64) * mask
    return {"input_ids": ids, "attention_mask": mask}


for _factory, _spec in ((ctc_recognizer, LINE_SPEC), (ctc_fragile, LINE_SPEC), (lstm_classifier, SEQ_SPEC),
                        (ceil_pool_net, FACE_SPEC), (gelu_block, PATCH_SPEC), (segmenter, TINY_SPEC),
                        (text_detector, TINY_SPEC), (cancelling, TINY_SPEC), (clamp_net, TINY_SPEC)):
    _factory.preprocess_spec = _spec  # type: ignore[attr-defined]


# -- ONNX graphs as other exporters write them (onnx.helper) ---------------------------------------------------

def _onnx_model(nodes: list, inputs: list, outputs: list, inits: dict) -> "onnx.ModelProto":
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "m", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)  # ORT reads <= 11
    onnx.checker.check_model(model)
    return model


def keras_nhwc_onnx(path, into: str = "transpose") -> None:
    """A channels-last input [N, 16, 16, 3] as tf2onnx writes a Keras model: scaled (layout-free Mul), then
    Transpose(0, 3, 1, 2) -> Conv -> Relu -> GlobalAveragePool -> MatMul.  ``into="reshape"``: the input goes into
    a Reshape and a MatMul instead, so the graph does not say its layout."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 16, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    inits = {"scale": np.float32(0.5), "w2": (rng.standard_normal((8, 4)) * 0.3).astype(np.float32)}
    if into == "reshape":
        inits |= {"shape": np.array([1, 768], np.int64),
                  "w1": (rng.standard_normal((768, 8)) * 0.05).astype(np.float32)}
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["f"]), helper.make_node("MatMul", ["f", "w1"], ["h"]),
                 helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    else:
        inits |= {"w1": (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32),
                  "b1": (rng.standard_normal(8) * 0.1).astype(np.float32)}
        nodes = [helper.make_node("Mul", ["x", "scale"], ["xs"]),
                 helper.make_node("Transpose", ["xs"], ["t"], perm=[0, 3, 1, 2]),
                 helper.make_node("Conv", ["t", "w1", "b1"], ["c"], pads=[1, 1, 1, 1], name="conv1"),
                 helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["p"]),
                 helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("MatMul", ["f", "w2"], ["y"])]
    onnx.save(_onnx_model(nodes, [x], [y], inits), str(path))


def vad_onnx(path, hidden: int = 8, frame: int = 32) -> None:
    """A voice-activity detector's interface: audio [1, frame], a recurrent state [2, 1, hidden] (its leading 2 is no
    batch), a rank-0 int64 sample rate ``sr`` the graph branches on (If: 16000 as it is, else doubled); outputs
    a probability [1, 1] and the new state."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def branch(name: str, node: "onnx.NodeProto") -> "onnx.GraphProto":
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT,
                                                                                  [1, frame])])

    inits = {"W": (rng.standard_normal((frame, hidden)) * 0.3).astype(np.float32),
             "U": (rng.standard_normal((hidden, hidden)) * 0.3).astype(np.float32),
             "V": (rng.standard_normal((hidden, 1)) * 0.3).astype(np.float32),
             "k16": np.array(16000, np.int64), "two": np.float32(2.0)}
    nodes = [helper.make_node("Equal", ["sr", "k16"], ["is16"]),
             helper.make_node("If", ["is16"], ["xs"], name="rate",
                              then_branch=branch("as_is", helper.make_node("Identity", ["x"], ["xs_t"])),
                              else_branch=branch("doubled", helper.make_node("Mul", ["x", "two"], ["xs_e"]))),
             helper.make_node("MatMul", ["xs", "W"], ["a"]), helper.make_node("MatMul", ["state", "U"], ["b"]),
             helper.make_node("Add", ["b", "a"], ["ab"]), helper.make_node("Tanh", ["ab"], ["new_state"]),
             helper.make_node("ReduceMean", ["new_state"], ["m"], axes=[0], keepdims=0),
             helper.make_node("MatMul", ["m", "V"], ["logit"]), helper.make_node("Sigmoid", ["logit"], ["prob"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, frame]),
              helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, hidden]),
              helper.make_tensor_value_info("sr", TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1]),
               helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, 1, hidden])]
    onnx.save(_onnx_model(nodes, inputs, outputs, inits), str(path))
