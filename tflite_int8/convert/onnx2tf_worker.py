"""Child-process entry for onnx2tf (see translate.py). Not a public API.

Run as ``python -m tflite_int8.convert.onnx2tf_worker JOB.json`` with the working
directory holding onnx2tf's sample-image file, so onnx2tf finds it locally and
never downloads it.  Network sockets are refused in this process.  The outcome
(ok or the error, including onnx2tf's ``sys.exit``) is written to JOB.json.out.
"""
from __future__ import annotations

import json
import socket
import sys
import traceback


def _refuse_network() -> None:
    real_connect = socket.socket.connect

    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise ConnectionRefusedError(f"tflite-int8 never uses the network (blocked connect to {address})")
        return real_connect(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = lambda self, address: 111  # type: ignore[method-assign]


def main(job_path: str) -> int:
    _refuse_network()
    with open(job_path) as f:
        job = json.load(f)
    result: dict = {"ok": False}
    try:
        import onnx2tf

        onnx2tf.convert(
            input_onnx_file_path=job["onnx"],
            output_folder_path=job["out"],
            not_use_onnxsim=True,
            output_signaturedefs=True,
            copy_onnx_input_output_names_to_tflite=True,
            verbosity="debug",  # per-node lines: the ONNX node behind each TF tensor (translate.node_map)
            keep_shape_absolutely_input_names=job.get("keep_shape") or None,
            custom_input_op_name_np_data_path=job.get("custom_data") or None,
        )
        result = {"ok": True}
    except SystemExit as exc:
        result = {"ok": False, "error": f"onnx2tf stopped (sys.exit({exc.code}))"}
    except BaseException as exc:  # report everything; the parent turns it into a ConversionError
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
    with open(job_path + ".out", "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    main(sys.argv[1])
