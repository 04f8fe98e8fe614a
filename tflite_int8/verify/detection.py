"""Detection parity: host-side decode + NMS (numpy), mAP with pycocotools, box agreement, the verify task.

The head description comes from conversion.json (``head.decode``, written by :mod:`.heads`): which
outputs hold boxes and scores, their layout (YOLOv5 [1, N, 5+nc] or YOLOv8 [1, 4+nc, N]), whether
boxes are pixels or fractions of the input size.  Labels are a COCO annotation file (``bbox`` =
[x, y, w, h] in pixels of the original image), mapped into model-input coordinates with the model's
preprocessing (letterbox, stretch or center-crop).
"""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config.preprocess import PreprocessSpec
from ..errors import InputError

MAP_CONF, MAP_IOU, MAP_MAX_DET = 0.001, 0.6, 100  # YOLOv5's val settings (COCO counts 100 per image)
SHOW_CONF, SHOW_IOU = 0.25, 0.45  # YOLOv5's predict settings: the boxes a user sees


def host_decode(outputs: Mapping[str, np.ndarray], head: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Run the decode tail (``decode.onnx``, float, ONNX Runtime) on the head convolutions' outputs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(head["decode_model_path"], opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(outputs[i.name], np.float32) for i in sess.get_inputs()}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def decode(outputs: Mapping[str, np.ndarray], head: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes xyxy in input pixels (N, 4), class scores (N, nc)) for one sample (batch 1)."""
    if head.get("mode") == "host":
        outputs = host_decode(outputs, head)
    v8 = head["layout"] == "v8"

    def rows(name: str) -> np.ndarray:
        y = np.asarray(outputs[name], dtype=np.float32)
        y = y.reshape(y.shape[-2:])
        return y.T if v8 else y

    if head["boxes"] == head["scores"]:
        y = rows(head["boxes"])
        boxes, rest = y[:, :4], y[:, 4:]
    else:
        boxes, rest = rows(head["boxes"]), rows(head["scores"])
    scores = rest[:, 1:] * rest[:, :1] if head.get("objectness") else rest
    if head.get("box_units") == "fraction of input size":
        h, w = head["input_size"]
        boxes = boxes * np.array([w, h, w, h], np.float32)
    xy, wh = boxes[:, :2], boxes[:, 2:4]
    return np.concatenate([xy - wh / 2, xy + wh / 2], 1), scores


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes, (len(a), len(b))."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:4] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:4] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, conf: float, iou: float, max_det: int) -> np.ndarray:
    """Class-aware greedy NMS on the best class per box: rows of (x1, y1, x2, y2, score, class)."""
    cls = scores.argmax(1)
    best = scores[np.arange(len(scores)), cls]
    keep = best > conf
    boxes, best, cls = boxes[keep], best[keep], cls[keep]
    order = np.argsort(-best, kind="stable")[:30000]
    boxes, best, cls = boxes[order], best[order], cls[order]
    shifted = boxes + (cls[:, None] * 4096.0)  # boxes of different classes never overlap
    chosen: list[int] = []
    alive = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        chosen.append(i)
        if len(chosen) >= max_det:
            break
        rest = np.flatnonzero(alive[i + 1:]) + i + 1
        if len(rest):
            alive[rest[iou_matrix(shifted[i:i + 1], shifted[rest])[0] > iou]] = False
    idx = np.asarray(chosen, dtype=np.int64)
    return np.concatenate([boxes[idx], best[idx, None], cls[idx, None].astype(np.float32)], 1)


def agreement(a: np.ndarray, b: np.ndarray, iou: float = 0.5) -> tuple[int, int, int]:
    """Greedy one-to-one matches (same class, IoU >= iou, highest score first): (matched, len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return 0, len(a), len(b)
    m = iou_matrix(a[:, :4], b[:, :4])
    m[a[:, 5][:, None] != b[:, 5][None, :]] = 0.0
    used = np.zeros(len(b), bool)
    matched = 0
    for i in np.argsort(-a[:, 4], kind="stable"):
        cand = np.where(~used & (m[i] >= iou), m[i], -1.0)
        j = int(cand.argmax())
        if cand[j] >= iou:
            used[j] = True
            matched += 1
    return matched, len(a), len(b)


def coco_map(truth: Sequence[np.ndarray], dets: Sequence[np.ndarray], num_classes: int) -> dict[str, float]:
    """mAP50-95 and mAP50 with pycocotools. ``truth[i]``: (x1, y1, x2, y2, class) rows; ``dets[i]``: nms() rows."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1} for i in range(len(truth))]
    anns = []
    for i, t in enumerate(truth):
        for x1, y1, x2, y2, c in np.asarray(t, dtype=np.float64).reshape(-1, 5):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c), "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    results = [{"image_id": i + 1, "category_id": int(d[5]), "score": float(d[4]),
                "bbox": [float(d[0]), float(d[1]), float(d[2] - d[0]), float(d[3] - d[1])]}
               for i, ds in enumerate(dets) for d in ds]
    if not anns:
        return {"map50_95": float("nan"), "map50": float("nan")}
    if not results:
        return {"map50_95": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c} for c in range(num_classes)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.imgIds = [im["id"] for im in images]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map50_95": float(ev.stats[0]), "map50": float(ev.stats[1])}


def read_coco(path: str | Path, spec: PreprocessSpec) -> dict[str, np.ndarray]:
    """A COCO annotation file -> {file name: (x1, y1, x2, y2, class) rows in model-input pixels}."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"detection labels {p} do not exist; give a COCO annotation JSON (images, annotations)")
    try:
        doc = json.loads(p.read_text())
        images = {im["id"]: im for im in doc["images"]}
        rows: dict[str, list] = {im["file_name"]: [] for im in images.values()}
        for a in doc["annotations"]:
            im = images[a["image_id"]]
            x, y, w, h = a["bbox"]
            rows[im["file_name"]].append(_to_model([x, y, x + w, y + h], im["width"], im["height"], spec)
                                         + [a["category_id"]])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p} is not a COCO annotation file (images with id/file_name/width/height, annotations "
                         f"with image_id/category_id/bbox): {type(exc).__name__}: {exc}") from None
    return {Path(k).name: np.asarray(v, np.float32).reshape(-1, 5) for k, v in rows.items()}


def _to_model(box: list[float], iw: int, ih: int, spec: PreprocessSpec) -> list[float]:
    """Original-image pixels -> model-input pixels, the same geometry as PreprocessSpec.resize_image."""
    h, w = spec.size
    if spec.resize == "stretch":
        sx, sy, dx, dy = w / iw, h / ih, 0.0, 0.0
    elif spec.resize == "letterbox":
        s = min(h / ih, w / iw)
        nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
        sx, sy, dx, dy = nw / iw, nh / ih, (w - nw) // 2, (h - nh) // 2
    else:
        s = max(h / spec.crop_fraction / ih, w / spec.crop_fraction / iw)
        nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
        sx, sy, dx, dy = nw / iw, nh / ih, -((nw - w) // 2), -((nh - h) // 2)
    x1, y1, x2, y2 = box
    out = [x1 * sx + dx, y1 * sy + dy, x2 * sx + dx, y2 * sy + dy]
    return [min(max(v, 0.0), float(w if i % 2 == 0 else h)) for i, v in enumerate(out)]


@dataclass(frozen=True)
class DetectionTask:
    """mAP of float and int8 (against labels and against the float model's own boxes), and box agreement."""

    head: Mapping[str, Any]
    truth: Mapping[str, np.ndarray] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    name: str = "detection"

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict:
        out = {}
        for key, outs in (("float", reference), ("int8", candidate)):
            boxes, scores = decode(outs, self.head)
            out[key] = np.round(nms(boxes, scores, MAP_CONF, MAP_IOU, MAP_MAX_DET), 3).tolist()
        return out

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[Any]) -> dict:
        if not records:
            return {}
        nc = int(self.head["num_classes"])
        fl = [np.asarray(r["float"], np.float32).reshape(-1, 6) for r in records]
        q8 = [np.asarray(r["int8"], np.float32).reshape(-1, 6) for r in records]
        shown_f = [d[d[:, 4] >= SHOW_CONF] for d in fl]
        shown_q = [d[d[:, 4] >= SHOW_CONF] for d in q8]
        per = [agreement(a, b) for a, b in zip(shown_f, shown_q)]
        matched, nf, nq = (sum(p[i] for p in per) for i in range(3))
        out: dict[str, Any] = {
            "samples": len(records), "num_classes": nc, "layout": self.head["layout"],
            "split_head": self.head["boxes"] != self.head["scores"],
            "box_agreement": 2 * matched / (nf + nq) if nf + nq else 1.0,
            "boxes_float": nf, "boxes_int8": nq, "boxes_matched": matched,
            "box_agreement_rule": f"boxes with score >= {SHOW_CONF} after NMS (IoU {SHOW_IOU}); a match is the same "
                                  f"class with IoU >= 0.5; agreement = 2 * matched / (float boxes + int8 boxes)",
        }
        vs_float = coco_map([d[:, [0, 1, 2, 3, 5]] for d in shown_f], q8, nc)
        out["map50_vs_float"], out["map50_95_vs_float"] = vs_float["map50"], vs_float["map50_95"]
        keys = [_key(n) for n in names]
        found = [self.truth.get(k) for k in keys]
        if self.truth:
            labelled = [i for i, t in enumerate(found) if t is not None]
            if not labelled:
                raise InputError(f"none of the {len(records)} verification images is in the detection labels "
                                 f"(labels name e.g. {next(iter(self.truth))!r}, samples e.g. {keys[0]!r})")
            truth = [found[i] for i in labelled]
            f_map = coco_map(truth, [fl[i] for i in labelled], nc)
            q_map = coco_map(truth, [q8[i] for i in labelled], nc)
            out.update(labelled_samples=len(labelled), map50_float=f_map["map50"], map50_int8=q_map["map50"],
                       map50_95_float=f_map["map50_95"], map50_95_int8=q_map["map50_95"],
                       map50_95_drop_points=100 * (f_map["map50_95"] - q_map["map50_95"]),
                       map50_drop_points=100 * (f_map["map50"] - q_map["map50"]))
        worst = sorted(range(len(per)), key=lambda i: (_ratio(per[i]), -per[i][1]))[:6]
        out["worst_samples"] = [{"sample": names[i], "float_boxes": shown_f[i].round(1).tolist(),
                                 "int8_boxes": shown_q[i].round(1).tolist(), "agreement": _ratio(per[i])}
                                for i in worst]
        return out

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]:
        fails = []
        need = thresholds.get("box_agreement")
        if need is not None and summary.get("box_agreement", 1.0) < need:
            fails.append(f"box agreement {summary['box_agreement']:.3f} < {need} ({summary['boxes_matched']} of "
                         f"{summary['boxes_float']} float / {summary['boxes_int8']} int8 boxes match)")
        drop = thresholds.get("map50_95_drop_points")
        if drop is not None and summary.get("map50_95_drop_points", 0.0) > drop:
            fails.append(f"mAP50-95 drops {summary['map50_95_drop_points']:.2f} points ({summary['map50_95_float']:.4f}"
                         f" -> {summary['map50_95_int8']:.4f}), more than {drop}")
        return fails


def _key(name: str) -> str:
    return Path(name.split("#")[0]).name


def _ratio(p: tuple[int, int, int]) -> float:
    return 2 * p[0] / (p[1] + p[2]) if p[1] + p[2] else 1.0
