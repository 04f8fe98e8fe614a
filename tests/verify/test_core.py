"""verify(): the parity ladder, task metrics, layer diagnosis, thresholds and reports, on real conversions."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.models import TINY_CLASSES, TINY_SPEC, tiny
from tflite_int8 import convert
from tflite_int8.cli import main
from tflite_int8.errors import InputError, Int8Warning
from tflite_int8.verify.core import verify


@pytest.fixture(scope="session")
def tiny_verified(tiny_conversion, tmp_path_factory):
    report_dir = tmp_path_factory.mktemp("verify") / "report"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = verify(tiny_conversion.out_dir, reference="tests.models:tiny", views=2, report_dir=report_dir)
    return result, [str(w.message) for w in caught if issubclass(w.category, Int8Warning)]


@pytest.fixture(scope="session")
def gray_photos(tmp_path_factory):
    """Constant images: calibrating on them gives ranges that fit nothing real."""
    folder = tmp_path_factory.mktemp("gray")
    for i, v in enumerate((120, 128, 136)):
        Image.fromarray(np.full((40, 40, 3), v, np.uint8)).save(folder / f"gray{i}.png")
    return folder


def test_ladder_attributes_each_step_and_passes(tiny_verified):
    result, _ = tiny_verified
    rep = result.report
    assert result.passed and rep["passed"] and not rep["failures"]
    steps = [s["step"] for s in rep["stages"]]
    assert steps == ["pytorch", "onnxruntime", "tflite-float32", "tflite-int8"]
    by = {s["step"]: s for s in rep["stages"]}
    assert by["onnxruntime"]["outputs"]["output"]["cosine"] > 0.99999
    assert by["tflite-float32"]["outputs"]["output"]["cosine"] > 0.99999
    q = by["tflite-int8"]["outputs"]["output"]
    assert 0.99 < q["cosine"] < 1.0 and q["max_abs_err"] > 0  # the loss is in the quantization step
    out = rep["outputs"]["output"]
    for key in ("cosine", "sqnr_db", "max_abs_err", "mean_abs_err", "max_abs_err_steps", "mean_abs_err_steps"):
        assert np.isfinite(out[key])
    assert sum(out["histogram"]["counts"]) == 48 * 10  # every logit of every sample
    assert rep["data"]["samples"] == 48


def test_classification_and_layers_in_report(tiny_verified):
    result, _ = tiny_verified
    rep = json.loads((result.report_dir / "report.json").read_text())
    c = rep["classification"]
    assert 0.75 <= c["top1_agreement"] <= 1.0 and c["top5_agreement"] >= c["top1_agreement"]
    assert len(c["disagreements"]) == round((1 - c["top1_agreement"]) * 48)
    layers = rep["layers"]
    assert len(layers) >= 8 and layers == sorted(layers, key=lambda r: -r["rmse_over_scale"])
    assert all(r["rmse_over_scale"] > 0.2 for r in layers[:3])  # rounding alone gives ~0.29
    assert any("/stem/stem.0/Conv" in r["onnx_nodes"] for r in layers)  # ONNX node recovered
    assert rep["thresholds"]["cosine"] == 0.95
    assert {r["step"] for r in rep["sizes_latency"]} == {"tflite-float32", "tflite-int8"}
    assert rep["latency_conditions"]["threads"] == 1 and rep["latency_conditions"]["cpu"]["cores"] >= 1


def test_class_names_declared_by_the_model_and_confident_agreement_in_every_view(tiny_verified):
    result, _ = tiny_verified
    rep = json.loads((result.report_dir / "report.json").read_text())
    assert rep["class_names"] == {"count": 10, "source": "declared by tests.models:tiny"}
    c = rep["classification"]
    # the tiny model's random head is never sure of a class: no confident sample, so nothing to judge there
    assert c["probabilities"] == "softmax of the output" and c["confident_rule"] == "float top-1 probability >= 0.5"
    assert c["confident_samples"] == 0 and c["top1_agreement_confident"] is None and c["margin_samples"] == 0
    assert rep["thresholds"]["top1_agreement_confident"] == 0.98 and result.passed
    assert all(d["float_class"] in TINY_CLASSES for d in c["disagreements"])
    page = (result.report_dir / "report.html").read_text()
    assert "where the float model is confident (float top-1 probability &gt;= 0.5): 0 samples" in page
    assert "Class names: 10, declared by tests.models:tiny" in page
    from tflite_int8.cli.summaries import verify_summary

    assert ("where the float model is confident (float top-1 probability >= 0.5): top-1 agreement - (0 samples)"
            in verify_summary(result))


def test_html_report_is_self_contained(tiny_verified):
    result, _ = tiny_verified
    page = (result.report_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # error histogram + layer bars
    assert "Parity ladder" in page and "Per-layer diagnosis" in page and "PASS" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched when opened


def test_overlap_with_calibration_is_warned(tiny_verified):
    result, warned = tiny_verified
    assert result.report["hygiene"]["shared_source_files"] == 24
    assert any("overlaps calibration" in w for w in warned)


def test_no_overlap_warning_on_other_data(tiny_conversion, gray_photos):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = verify(tiny_conversion.out_dir, data=gray_photos, layers=False)
    assert result.report["hygiene"]["shared_source_files"] == 0
    assert not any("overlaps" in str(w.message) for w in caught)
    assert result.report_dir is None and not (tiny_conversion.out_dir / "verify").exists()  # API: no files unasked


def test_broken_model_fails_with_exit_1_and_points_at_layers(tmp_path, photos, gray_photos, capsys):
    with pytest.warns(Int8Warning, match="calibration samples look constant"):
        broken = convert("tests.models:spatial", tmp_path / "broken", data=gray_photos, views=2)
    code = main(["verify", str(broken.out_dir), "--data", str(photos)])
    printed = capsys.readouterr()
    assert code == 1
    assert "FAILED" in printed.out and "worst layers" in printed.out
    rep = json.loads((broken.out_dir / "verify" / "report.json").read_text())
    assert not rep["passed"] and any("cosine" in f for f in rep["failures"])
    assert rep["layers"][0]["rmse_over_scale"] > 0.7 and rep["layers"][0]["verdict"] == "bad"
    assert (broken.out_dir / "verify" / "report.html").is_file()


def test_labels_give_accuracy_of_both_models(tiny_conversion, photos, tmp_path):
    first = verify(tiny_conversion.out_dir, layers=False)
    c = first.report["classification"]
    disagree = {d["sample"]: d for d in c["disagreements"]}
    # label every photo with class 3: accuracy = share of samples whose top-1 is 3
    csv = tmp_path / "labels.csv"
    from tflite_int8.data.images import list_images

    names = [p.name for p in list_images(photos).paths]
    csv.write_text("file,label\n" + "".join(f"{n},3\n" for n in names))
    result = verify(tiny_conversion.out_dir, labels=csv, layers=False)
    rc = result.report["classification"]
    assert rc["labelled_samples"] == 24
    assert 0.0 <= rc["accuracy_float"] <= 1.0 and 0.0 <= rc["accuracy_int8"] <= 1.0
    assert rc["accuracy_drop_points"] == pytest.approx(100 * (rc["accuracy_float"] - rc["accuracy_int8"]))
    assert rc["top1_agreement"] == c["top1_agreement"] and len(rc["disagreements"]) == len(disagree)


def test_workers_give_the_same_numbers(tiny_conversion):
    one = verify(tiny_conversion.out_dir, layers=False, views=2)
    two = verify(tiny_conversion.out_dir, layers=False, views=2, workers=2)
    assert one.report["outputs"] == two.report["outputs"]
    assert one.report["stages"] == two.report["stages"]
    assert one.report["classification"] == two.report["classification"]


def test_explicit_reference_and_tflite(tiny_conversion):
    onnx = tiny_conversion.out_dir / "model.onnx"
    result = verify(tflite=tiny_conversion.int8_path, reference=onnx, spec=TINY_SPEC, layers=False)
    assert [s["step"] for s in result.report["stages"]] == ["reference", "tflite-int8"]
    assert result.passed and result.report_dir is None
    f32 = tiny_conversion.files["float32"]
    by_tflite = verify(tflite=tiny_conversion.int8_path, reference=f32, spec=TINY_SPEC, layers=False)
    assert next(iter(by_tflite.report["outputs"].values()))["cosine"] > 0.99


def test_missing_artefacts_are_skipped_and_said(tiny_conversion, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_conversion.out_dir, copy)
    (copy / "model.onnx").unlink()
    (copy / "model_float32.tflite").unlink()
    result = verify(copy, reference=tiny())
    skipped = {s["step"]: s["skipped"] for s in result.report["stages"] if "skipped" in s}
    assert set(skipped) == {"onnxruntime", "tflite-float32"}
    assert result.report["layers"] == [] and "model.onnx" in result.report["layers_note"]
    assert result.passed


def test_existing_report_needs_force(tiny_conversion, tmp_path):
    rd = tmp_path / "r"
    rd.mkdir()
    (rd / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        verify(tiny_conversion.out_dir, layers=False, report_dir=rd)
    assert (rd / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("argv, message", [
    (["verify", "{tmp}/nowhere"], "no conversion.json"),
    (["verify"], "give a conversion folder"),
    (["verify", "{conv}", "--thresholds", "{tmp}/t.json", "--report-dir", "{tmp}/r"], "unknown threshold 'cosin'"),
    (["verify", "{conv}", "--workers", "0", "--report-dir", "{tmp}/r"], "workers must be at least 1"),
    (["verify", "{conv}", "--labels", "{tmp}/none.csv", "--no-layers", "--report-dir", "{tmp}/r"], "do not exist"),
])
def test_verify_user_errors_exit_2(tiny_conversion, tmp_path, capsys, argv, message):
    (tmp_path / "t.json").write_text('{"cosin": 0.9}')
    args = [a.format(tmp=tmp_path, conv=tiny_conversion.out_dir) for a in argv]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_folder_written_before_the_restructure_still_verifies(tmp_path, photos):
    """tests/golden/conversion_v0_1: tests.models:tiny converted by the code before the subpackage layout
    (commit 2230af4); today's verify reads its conversion.json and checks it end to end."""
    from tflite_int8.convert.record import read_conversion

    golden = Path(__file__).parents[1] / "golden" / "conversion_v0_1"
    conv = read_conversion(golden)
    assert conv.int8_path.name == "model_int8.tflite" and conv.spec.size == (32, 32)
    result = verify(golden, data=photos, num_samples=6, report_dir=tmp_path / "report", layers=False)
    assert [s["step"] for s in result.report["stages"] if "skipped" not in s] == [
        "pytorch", "onnxruntime", "tflite-float32", "tflite-int8"]
    assert result.passed, result.failures
