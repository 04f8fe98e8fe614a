"""verify on Ray: shards as tasks give the local records bit for bit, in order; a lost worker's shard is re-run."""
from __future__ import annotations

import json

import pytest

from tests.models import TINY_SPEC, KillsItsWorkerOnce
from tflite_int8 import verify
from tflite_int8.cli import main
from tflite_int8.cli.summaries import ray_line
from tflite_int8.convert.record import read_conversion
from tflite_int8.errors import InputError
from tflite_int8.data.readers import open_reader
from tflite_int8.verify.distributed import run_ladder_on_ray
from tflite_int8.verify.engines import EngineSpec
from tflite_int8.verify.ladder import LadderJob, run_ladder
from tflite_int8.verify.tasks import choose_task


def _job(folder) -> LadderJob:
    conv = read_conversion(folder)
    steps = (EngineSpec("onnxruntime", "onnxruntime", str(conv.onnx_path)),
             EngineSpec("tflite-float32", "tflite", str(conv.variant_path("float32"))),
             EngineSpec("tflite-int8", "tflite", str(conv.int8_path)))
    return LadderJob(steps, conv.spec, tuple(conv.output_names),
                     choose_task("auto", {n: (1, 10) for n in conv.output_names}, []))


def test_records_on_ray_are_the_local_ones(ray_cluster, tiny_conversion, photos):
    job = _job(tiny_conversion.out_dir)
    reader = open_reader(photos, TINY_SPEC, views=2, warn_few=False)
    local = run_ladder(job, reader)
    remote, where = run_ladder_on_ray(job, reader, "local")
    assert [r["index"] for r in remote] == list(range(len(reader))) == [r["index"] for r in local]
    assert remote == local  # every metric, histogram, task record and thumbnail, exactly
    assert where["executor"] == "ray" and where["started_here"] is False and where["shards"] == 4
    assert where["address"].startswith("127.0.0.1:") and where["retried"] == []


def test_verify_ray_flag_gives_the_local_report(ray_cluster, tiny_conversion, tmp_path, capsys):
    code = main(["verify", str(tiny_conversion.out_dir), "--no-layers", "--views", "2", "--report-dir",
                 str(tmp_path / "r"), "--ray"])
    out = capsys.readouterr().out
    on_ray = json.loads((tmp_path / "r" / "report.json").read_text())
    here = verify(tiny_conversion.out_dir, layers=False, views=2).report
    assert code == 0 and "ran on Ray at 127.0.0.1:" in out and "4 shards" in out
    for key in ("outputs", "stages", "classification", "hygiene"):
        assert on_ray[key] == json.loads(json.dumps(here[key])), key
    assert on_ray["data"]["ray"]["retried"] == [] and "ray" not in here["data"]


def test_a_killed_worker_is_retried_and_changes_nothing(ray_cluster, tiny_conversion, tmp_path):
    reference = KillsItsWorkerOnce(str(tmp_path / "killed"))
    common = dict(tflite=tiny_conversion.int8_path, spec=TINY_SPEC, layers=False, views=2)
    remote = verify(reference=reference, ray="local", **common).report
    assert (tmp_path / "killed").exists()  # a worker did die
    retried = remote["data"]["ray"]["retried"]
    assert len(retried) == 1 and retried[0]["attempts"] == 2, retried
    first, last = retried[0]["samples"]
    assert 0 <= first <= last < remote["data"]["samples"]
    assert (f"retried after losing their worker: shard {retried[0]['shard']} (samples {first}-{last}, 2 attempts)"
            in ray_line(remote["data"]["ray"]))  # what the verify summary prints
    local = verify(reference=reference, **common).report  # the marker exists: nothing dies any more
    for key in ("outputs", "stages", "classification"):
        assert remote[key] == local[key], key


def test_ray_arguments_are_checked(tiny_conversion, capsys):
    with pytest.raises(InputError, match="either workers"):
        verify(tiny_conversion.out_dir, layers=False, workers=2, ray="local")
    with pytest.raises(SystemExit) as exc:  # `--ray FOLDER`: the folder was taken as the address
        main(["verify", "--ray", str(tiny_conversion.out_dir)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "is not a Ray address" in err and "--ray=local" in err
