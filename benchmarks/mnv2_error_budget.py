"""Where MobileNetV2's int8 error comes from: a fake-quant simulation in PyTorch (BN folded, as the converter does).

Weights: TFLite's per-channel symmetric int8, nearest or GPTQ-rounded with the sequential bias correction
(:mod:`tflite_int8.recover.weight_rounding`).
Activations: per-tensor asymmetric int8 at every point the int8 model requantizes (each conv output after
its ReLU6, each residual add, the pooled features, the logits), ranges from the calibration's min/max or
MSE-optimal (:mod:`tflite_int8.convert.ranges`).  Same split as bench_recover (calibration: even photos x 10 views;
held-out: odd photos x 25 views).  Prints top-1 agreement and logits cosine against the float model for
each combination, then a leave-one-out over the activation points (on a third of the samples).
Run: `.venv/bin/python -m benchmarks.mnv2_error_budget`.
"""
from __future__ import annotations

import numpy as np

Q_POINTS = ("input", "conv", "add", "mean", "fc")


def _fold(seq):
    conv, bn = seq[0], seq[1]
    s = bn.weight / (bn.running_var + bn.eps).sqrt()
    return dict(w=(conv.weight * s[:, None, None, None]).detach().clone(), b=(bn.bias - bn.running_mean * s).detach(),
                stride=conv.stride, pad=conv.padding, groups=conv.groups, relu=len(seq) > 2)


def _layers(model):
    from torch import nn

    feats = list(model.features)
    blocks = [([_fold(feats[0])], False)]
    for blk in feats[1:-1]:
        mods = list(blk.conv)
        convs = [_fold(m) for m in mods if isinstance(m, nn.Sequential)] + [_fold(nn.Sequential(mods[-2], mods[-1]))]
        blocks.append((convs, blk.use_res))
    blocks.append(([_fold(feats[-1])], False))
    fc = model.classifier[1]
    return blocks, dict(w=fc.weight.detach().clone(), b=fc.bias.detach())


def _fq(x, lo, hi):
    import torch

    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0
    zp = float(np.round(-128 - lo / scale))
    return (torch.clamp(torch.round(x / scale) + zp, -128, 127) - zp) * scale


def _forward(blocks, fc, x, ranges=None, tap=None, skip=()):
    import torch
    import torch.nn.functional as F

    def point(t, name):
        if tap is not None:
            tap(name, t)
        return _fq(t, *ranges[name]) if ranges is not None and name not in skip else t

    x = point(x, "input")
    for bi, (convs, res) in enumerate(blocks):
        inp = x
        for ci, c in enumerate(convs):
            x = F.conv2d(x, c["w"], c["b"], c["stride"], c["pad"], 1, c["groups"])
            x = point(torch.clamp(x, 0, 6) if c["relu"] else x, f"b{bi}c{ci}")
        if res:
            x = point(inp + x, f"b{bi}add")
    return point(F.linear(point(x.mean((2, 3)), "mean"), fc["w"], fc["b"]), "fc")


def _nearest(blocks, fc):
    import torch

    from tflite_int8.recover.bias_correction import fake_quant_per_channel

    for c in [c for convs, _ in blocks for c in convs] + [fc]:
        c["w"] = torch.from_numpy(fake_quant_per_channel(c["w"].numpy()))


def _gptq(blocks, fc, cal):
    """GPTQ with the product's own routine, Hessians from the float model's layer inputs, then its bias correction."""
    import copy

    import torch
    import torch.nn.functional as F

    from tflite_int8.recover.weight_rounding import _gptq as gptq
    from tflite_int8.recover.weight_rounding import patch_hessian

    convs = [c for cs, _ in blocks for c in cs]
    hs: dict[int, torch.Tensor] = {}

    def tap_inputs(x):
        for bi, (cs, res) in enumerate(blocks):
            inp = x
            for c in cs:
                pads = (c["pad"][0], c["pad"][1], c["pad"][0], c["pad"][1])
                h = patch_hessian(x.double(), c["w"].shape[2:], pads, c["stride"], (1, 1), c["groups"])
                hs[id(c)] = hs.get(id(c), 0) + h
                x = F.conv2d(x, c["w"], c["b"], c["stride"], c["pad"], 1, c["groups"])
                x = torch.clamp(x, 0, 6) if c["relu"] else x
            x = inp + x if res else x
        f = x.mean((2, 3)).double()
        hs[id(fc)] = hs.get(id(fc), 0) + (f.T @ f)[None]

    for i in range(0, len(cal), 20):
        tap_inputs(torch.from_numpy(cal[i:i + 20]))
    originals = copy.deepcopy((blocks, fc))
    for c in convs + [fc]:
        w = c["w"].double()
        g = c.get("groups", 1)
        q = gptq(w.reshape(g, w.shape[0] // g, -1), hs[id(c)])
        c["w"] = q.reshape(w.shape).float()
    _correct_biases(originals, blocks, fc, torch.from_numpy(cal))


def _correct_biases(originals, blocks, fc, x):
    """As weight_rounding does: layer by layer, shift each bias so its mean output (earlier layers rounded and
    corrected) equals the float model's."""
    import torch
    import torch.nn.functional as F

    def pre(c, x):
        return F.conv2d(x, c["w"], c["b"], c["stride"], c["pad"], 1, c["groups"])

    xf, xq = x, x
    for (cs, res), (fcs, _) in zip(blocks, originals[0]):
        inf, inq = xf, xq
        for c, cf in zip(cs, fcs):
            yf = pre(cf, xf)
            c["b"] = c["b"] + (yf - pre(c, xq)).mean((0, 2, 3))
            yq = pre(c, xq)
            xf, xq = (torch.clamp(yf, 0, 6), torch.clamp(yq, 0, 6)) if c["relu"] else (yf, yq)
        xf, xq = (inf + xf, inq + xq) if res else (xf, xq)
    ff = originals[1]
    fc["b"] = fc["b"] + (F.linear(xf.mean((2, 3)), ff["w"], ff["b"]) - F.linear(xq.mean((2, 3)), fc["w"], fc["b"])).mean(0)


def _ranges(blocks, fc, cal, mse):
    import torch

    from tflite_int8.convert.ranges import BINS, best_range

    seen: dict[str, list] = {}
    _forward(blocks, fc, torch.from_numpy(cal), tap=lambda n, t: seen.setdefault(n, []).append(t.flatten()))
    out = {}
    for name, ts in seen.items():
        v = torch.cat(ts).numpy()
        lo, hi = float(v.min()), float(v.max())
        if mse and name not in ("input", "fc"):
            nz = v[v != 0]
            lo, hi = best_range(np.histogram(nz, BINS, (lo, hi))[0].astype(np.float64), lo, hi)
        out[name] = (lo, hi)
    return out


def run(top: int = 5) -> dict:
    import copy

    import torch

    from tflite_int8.data.readers import default_data_dir, open_reader
    from tflite_int8.data.images import list_images
    from tflite_int8.zoo.models import mobilenet_v2

    torch.set_grad_enabled(False)
    spec = mobilenet_v2.preprocess_spec
    photos = list_images(default_data_dir()).paths
    cal = np.concatenate([s.x for s in open_reader(photos[0::2], spec, views=10, warn_few=False)])
    val = torch.from_numpy(np.concatenate([s.x for s in open_reader(photos[1::2], spec, views=25, seed=1,
                                                                     warn_few=False)]))
    blocks, fc = _layers(mobilenet_v2())

    def fwd(b, f, ranges=None, skip=(), x=val):  # in chunks: 300 samples at once spill every cache
        return torch.cat([_forward(b, f, x[i:i + 25], ranges, skip=skip) for i in range(0, len(x), 25)])

    ref = fwd(blocks, fc)

    def score(out, ref=ref) -> dict:
        return {"top1_agreement": (ref.argmax(1) == out.argmax(1)).float().mean().item(),
                "cosine": torch.nn.functional.cosine_similarity(ref, out).mean().item()}

    near_b, near_f = copy.deepcopy((blocks, fc))
    _nearest(near_b, near_f)
    gq_b, gq_f = copy.deepcopy((blocks, fc))
    _gptq(gq_b, gq_f, cal)
    minmax, mse = _ranges(blocks, fc, cal, False), _ranges(gq_b, gq_f, cal, True)
    rows = {"weights nearest, activations float": score(fwd(near_b, near_f)),
            "weights GPTQ + bias correction, activations float": score(fwd(gq_b, gq_f)),
            "weights float, activations min/max": score(fwd(blocks, fc, minmax)),
            "weights nearest + activations min/max (the converter's default)": score(fwd(near_b, near_f, minmax)),
            "weights GPTQ + bias correction, activations MSE ranges (the weight-rounding strategy)": score(fwd(gq_b, gq_f, mse))}
    few = val[::3]  # the leave-one-out runs the model once per point: a third of the samples
    single = [{"point": name, **score(fwd(gq_b, gq_f, mse, skip=(name,), x=few), ref[::3])} for name in mse]
    single.sort(key=lambda r: -r["cosine"])
    return {"samples": len(val), "loo_samples": len(few), "points": len(mse), "rows": rows,
            "all_quantized_on_loo_samples": score(fwd(gq_b, gq_f, mse, x=few), ref[::3]),
            "leave_one_out": single[:top]}


def table(r: dict) -> list[str]:
    lines = [f"Where the int8 error comes from (`benchmarks/mnv2_error_budget.py`: a PyTorch fake-quant simulation of "
             f"the int8 model, BN folded, TFLite's grids; same {r['samples']} held-out samples):", "",
             "| weights / activations | top-1 agreement | mean logits cosine |", "|---|---|---|"]
    lines += [f"| {k} | {v['top1_agreement']:.1%} | {v['cosine']:.4f} |" for k, v in r["rows"].items()]
    best, base = r["leave_one_out"][0], r["all_quantized_on_loo_samples"]
    lines += ["", f"On {r['loo_samples']} of these samples (GPTQ + MSE: cosine {base['cosine']:.4f}, top-1 "
              f"{base['top1_agreement']:.1%}), leaving any one of the {r['points']} activation quantization points in "
              f"float reaches at best cosine {best['cosine']:.4f} / top-1 {best['top1_agreement']:.1%} (point "
              f"{best['point']}); next: " + ", ".join(f"{x['point']} {x['cosine']:.4f}" for x in r["leave_one_out"][1:])
              + ". The loss is spread over the activations, not one layer.", ""]
    return lines


if __name__ == "__main__":
    print("\n".join(table(run())))
