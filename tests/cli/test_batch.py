"""`tflite-int8 batch ZOO.toml`: many models, each described by the CLI's own options; one failing never stops
the others; the exit code is the worst model's."""
from __future__ import annotations

import json

import pytest

from tflite_int8.cli import main

ZOO = """
[defaults.verify]
no-layers = true

[models.tiny]
model = "tests.models:tiny"

[models.strict]
model = "tests.models:spatial"
views = 2
[models.strict.verify]
min-cosine = 1.01

[models.broken]
model = "{broken}"
"""


def test_a_broken_model_does_not_stop_the_others(ray_cluster, tmp_path, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an ONNX file")
    zoo = tmp_path / "zoo.toml"
    zoo.write_text(ZOO.format(broken=broken))
    code = main(["batch", str(zoo), "-o", str(tmp_path / "out"), "--ray"])
    table = capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "batch.json").read_text())
    rows = {r["model"]: r for r in doc["models"]}
    assert [r["model"] for r in doc["models"]] == ["tiny", "strict", "broken"]  # the zoo's order
    assert code == doc["exit_code"] == 2  # the worst: a model that cannot be converted
    assert [rows[m]["status"] for m in rows] == ["passed", "check failed", "bad input"]
    assert [rows[m]["exit_code"] for m in rows] == [0, 1, 2]
    assert rows["strict"]["failures"] and "1.01" in rows["strict"]["failures"][0]
    assert rows["broken"]["stage"] == "convert" and "not a valid ONNX model" in rows["broken"]["error"]
    for name in ("tiny", "strict"):  # both converted and verified, each in its own folder
        assert (tmp_path / "out" / name / "model_int8.tflite").is_file()
        assert (tmp_path / "out" / name / "verify" / "report.json").is_file()
        assert rows[name]["top1_agreement"] is not None and rows[name]["int8_bytes"] > 0
    assert not (tmp_path / "out" / "broken").exists() and rows["broken"]["folder"] is None
    assert json.loads((tmp_path / "out" / "strict" / "conversion.json").read_text())["calibration"]["views"] == 2
    lines = table.splitlines()
    assert [line.split()[:2] for line in lines[1:4]] == [["tiny", "passed"], ["strict", "check"], ["broken", "bad"]]
    assert "exit code 2" in table and "ran on Ray at 127.0.0.1:" in table


@pytest.mark.parametrize("models, message", [
    ('[models.a]\nmodel = "m.onnx"\nviewz = 2\n', "unknown key 'viewz'; the keys are convert's options: "),
    ('[models.a]\nmodel = "m.onnx"\nviews = "two"\n', "argument --views: invalid int value: 'two'"),
    ('[models.a]\nmodel = "m.onnx"\nio-dtype = "int4"\n', "argument --io-dtype: invalid choice: 'int4'"),
    ('[models.a]\nmodel = "m.onnx"\nper-tensor = "yes"\n', "per-tensor is a switch: true or false"),
    ('[models.a]\nmodel = "m.onnx"\nout = "x"\n', "unknown key 'out'"),
    ('[models.a]\nmodel = "m.onnx"\n[models.a.verify]\nmin-top1 = "high"\n', "[models.a].verify: argument --min-top1"),
    ('[models.a]\nviews = 2\n', "model = 'package.module:factory' or 'path/to/model.onnx' is required"),
    ('[models."a/b"]\nmodel = "m.onnx"\n', "the name is also the output folder"),
    ('[model.a]\nmodel = "m.onnx"\n', "unknown table(s) ['model']"),
    ('[models.a\n', "is not valid TOML"),
])
def test_every_model_is_checked_before_anything_runs(tmp_path, capsys, models, message):
    zoo = tmp_path / "zoo.toml"
    zoo.write_text('[models.fine]\nmodel = "tests.models:tiny"\n' + models)
    assert main(["batch", str(zoo), "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing converted, nothing written
