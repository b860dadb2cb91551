#!/usr/bin/python3
"""FP64 requests to `keel serve` keep their doubles end to end. A LightGBM
model compares double(x) <= threshold, so rows set to its own thresholds
score differently once narrowed to float. Every way an FP64 tensor can
arrive (REST JSON, REST binary tensor, gRPC fp64_contents, gRPC raw) must
answer what `keel score` answers on the same doubles (LightGBM's own
semantics, checked against LightGBM's outputs by the loader tests), and the
same rows sent as FP32 must not, or the test proves nothing. Loopback only;
the server is stopped by PID.
Usage: test_serve_float64.py KEEL_BINARY [ignored]"""
import csv
import importlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

import grpc
import requests

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "support"))
from keel_serve import Checks, Server  # noqa: E402

keel = sys.argv[1]
model = os.path.join(here, "..", "data", "lightgbm", "binary.model.txt")
proto_dir = os.path.join(here, "..", "..", "proto")
check = Checks()


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def threshold_rows():
    """One row per numeric threshold with no exact float: that feature set
    to the threshold, the others 0.1 * (f + 1)."""
    text = open(model).read()
    names = text.split("feature_names=", 1)[1].split("\n", 1)[0].split()
    rows = []
    for block in text.split("Tree=")[1:]:
        fields = dict(line.split("=", 1) for line in block.split("\n") if "=" in line)
        if "split_feature" not in fields:
            continue
        for f, t, d in zip(fields["split_feature"].split(), fields["threshold"].split(),
                           fields["decision_type"].split()):
            if int(d) & 1:  # categorical
                continue
            t = float(t)
            if f32(t) == t:
                continue
            row = [0.1 * (i + 1) for i in range(len(names))]
            row[int(f)] = t
            rows.append(row)
    return names, rows


names, rows = threshold_rows()
n, F = len(rows), len(names)
flat = [v for r in rows for v in r]
check(n > 10, "%d rows on thresholds without an exact float" % n)

# The reference: `keel score` on the same doubles (repr() round-trips them).
buf = io.StringIO()
w = csv.writer(buf)
w.writerow(names)
for r in rows:
    w.writerow([repr(v) for v in r])
tmp = tempfile.mkdtemp(prefix="keel_f64_")
path = os.path.join(tmp, "rows.csv")
with open(path, "w") as fh:
    fh.write(buf.getvalue())
out = subprocess.run([keel, "score", "--model", model, "--input", path], check=True, capture_output=True,
                     text=True, timeout=60).stdout.split()
want = [f32(float(v)) for v in out[1:]]
check(len(want) == n, "keel score answered every row")

subprocess.run(["protoc", "--proto_path=" + proto_dir, "--python_out=" + tmp,
                os.path.join(proto_dir, "open_inference_grpc.proto")], check=True, timeout=60)
sys.path.insert(0, tmp)
pb = importlib.import_module("open_inference_grpc_pb2")

server = Server(keel, "--model", "m=" + model)
try:
    url = server.base + "/v2/models/m/infer"

    def rest(datatype, values):
        r = requests.post(url, json={"inputs": [{"name": "input-0", "shape": [n, F], "datatype": datatype,
                                                 "data": values}]}, timeout=10)
        return r.status_code, r.json()

    def close(a, b):  # float answers of the same double computation
        return len(a) == len(b) and all(abs(x - y) <= 1e-6 * abs(y) + 1e-7 for x, y in zip(a, b))

    status, body = rest("FP64", flat)
    got = [f32(v) for v in body["outputs"][0]["data"]] if status == 200 else []
    check(status == 200 and got == want, "REST JSON FP64 answers what keel score answers on the doubles")
    if got != want and status == 200:
        bad = [i for i in range(n) if got[i] != want[i]]
        print("  rows differing: %d, first %d: %r vs %r" % (len(bad), bad[0], got[bad[0]], want[bad[0]]))
        check(close(got, want), "  (at least within float rounding)")
    status, body32 = rest("FP32", flat)
    got32 = [f32(v) for v in body32["outputs"][0]["data"]]
    differ = sum(1 for a, b in zip(got32, want) if abs(a - b) > 1e-4)
    check(status == 200 and differ > 0, "the same rows as FP32 take other branches (%d of %d rows)" % (differ, n))

    header = json.dumps({"inputs": [{"name": "input-0", "shape": [n, F], "datatype": "FP64",
                                     "parameters": {"binary_data_size": 8 * n * F}}]}).encode()
    r = requests.post(url, data=header + struct.pack("<%dd" % (n * F), *flat),
                      headers={"Inference-Header-Content-Length": str(len(header)),
                               "Content-Type": "application/octet-stream"}, timeout=10)
    check(r.status_code == 200 and [f32(v) for v in r.json()["outputs"][0]["data"]] == want,
          "REST binary FP64 tensor: the same answers")

    # Doubles no float holds are not errors any more (the models get doubles).
    big = list(rows[0])
    big[0] = 1e300
    r = requests.post(url, json={"inputs": [{"name": "input-0", "shape": [1, F], "datatype": "FP64",
                                             "data": big}]}, timeout=10)
    check(r.status_code == 200, "FP64 1e300 is scored (%d)" % r.status_code)

    ch = grpc.insecure_channel(server.first["grpc"])
    infer = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                           request_serializer=pb.ModelInferRequest.SerializeToString,
                           response_deserializer=pb.ModelInferResponse.FromString)

    def tensor(datatype, **contents):
        t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype=datatype, shape=[n, F])
        if contents:
            t.contents.CopyFrom(pb.InferTensorContents(**contents))
        return t

    g = infer(pb.ModelInferRequest(model_name="m", inputs=[tensor("FP64", fp64_contents=flat)]), timeout=10)
    check(list(g.outputs[0].contents.fp32_contents) == want, "gRPC fp64_contents: the same answers")
    g = infer(pb.ModelInferRequest(model_name="m", inputs=[tensor("FP64")],
                                   raw_input_contents=[struct.pack("<%dd" % (n * F), *flat)]), timeout=10)
    check(list(struct.unpack("<%df" % n, g.raw_output_contents[0])) == want, "gRPC raw FP64: the same answers")
    g = infer(pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", fp32_contents=flat)]), timeout=10)
    check(list(g.outputs[0].contents.fp32_contents) == got32, "gRPC FP32 answers as REST FP32 does")
    check(requests.get(server.base + "/v2/health/ready", timeout=5).status_code == 200, "still serving")
finally:
    server.stop()
check.exit()
