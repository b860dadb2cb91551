#!/usr/bin/python3
"""End-to-end test of explanations from `keel serve` (issue 16), REST and
gRPC, with clients that are not ours (requests, grpcio): the contributions
and leaf outputs against XGBoost's own pred_contribs / pred_leaf
(NAME.contribs.csv, NAME.leaf.csv next to the model file given), reason
codes, a degraded row explained by the fallback's model, a default-stage row
with no explanation, bad parameters refused by name while the server keeps
serving. Loopback only; the server is stopped by PID.
Usage: test_serve_explain.py KEEL_BINARY MODEL_JSON (its folder holds the fixtures)"""
import csv
import importlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import grpc
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel = sys.argv[1]
fixtures = os.path.dirname(os.path.abspath(sys.argv[2]))
check = Checks()


def read_csv(name, conv=float):
    with open(os.path.join(fixtures, name)) as f:
        r = list(csv.reader(f))
    return r[0], [[conv(v) if v != "" else None for v in row] for row in r[1:]]


_, rows = read_csv("binary_logitraw.explain.input.csv")
_, want_c = read_csv("binary_logitraw.contribs.csv")
_, want_leaf = read_csv("binary_logitraw.leaf.csv", int)
_, backup_rows = read_csv("binary_logistic.explain.input.csv")
_, backup_c = read_csv("binary_logistic.contribs.csv")
_, backup_leaf = read_csv("binary_logistic.leaf.csv", int)
F = len(rows[0])
n = len(rows)

tmp = tempfile.mkdtemp(prefix="keel_explain_")
models = os.path.join(tmp, "models")
for name, files, cfg in [
    ("plain", ["binary_logitraw.json"], None),
    # The primary always times out (a fault's latency past its attempt
    # timeout; the load's canary rows have no such timeout): the fallback,
    # another model, answers.
    ("chain", ["binary_logitraw.json", "binary_logistic.json"],
     {"models": [{"name": "primary", "path": "binary_logitraw.json", "fault": {"latency_ms": 60}},
                 {"name": "backup", "path": "binary_logistic.json"}],
      "chain": [{"model": "primary", "isolated": True, "timeout_ms": 20}, {"model": "backup", "name": "fallback"},
                {"default": [0.5]}]}),
    # The primary always times out and only a default answer is left.
    ("dflt", ["binary_logitraw.json"],
     {"models": [{"name": "primary", "path": "binary_logitraw.json", "fault": {"latency_ms": 60}}],
      "chain": [{"model": "primary", "isolated": True, "timeout_ms": 20}, {"default": [0.25], "name": "constant"}]}),
]:
    os.makedirs(os.path.join(models, name))
    for f in files:
        shutil.copy(os.path.join(fixtures, f), os.path.join(models, name, f))
    if cfg:
        with open(os.path.join(models, name, "engine.json"), "w") as f:
            json.dump(cfg, f)

gen = os.path.join(tmp, "gen")
os.makedirs(gen)
proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
subprocess.run(["protoc", "--proto_path=" + proto_dir, "--python_out=" + gen,
                os.path.join(proto_dir, "open_inference_grpc.proto")], check=True, timeout=60)
sys.path.insert(0, gen)
pb = importlib.import_module("open_inference_grpc_pb2")


def close(a, b, tol=1e-5):
    return a is not None and b is not None and abs(a - b) <= tol


def rows_close(got, want, tol=1e-5):
    return len(got) == len(want) and all(len(g) == len(w) and all(close(x, y, tol) for x, y in zip(g, w))
                                         for g, w in zip(got, want))


def split(flat, width):
    return [flat[i * width:(i + 1) * width] for i in range(len(flat) // width)]


srv = Server(keel, "--models", models)
try:
    s = requests.Session()

    def infer(model, body, **kw):
        return s.post(srv.base + "/v2/models/%s/infer" % model, json=body, **kw)

    def body(data, outputs=None, params=None):
        b = {"inputs": [{"name": "x", "shape": [len(data), F], "datatype": "FP32", "data": data}]}
        if outputs is not None:
            b["outputs"] = [{"name": o} for o in outputs]
        if params:
            b["parameters"] = params
        return b

    def output(j, name):
        return next((o for o in j["outputs"] if o["name"] == name), None)

    # --- REST: the tensors against XGBoost --------------------------------
    r = infer("plain", body(rows, ["output-0", "contributions", "leaf"]))
    j = r.json()
    check(r.status_code == 200, "contributions + leaf asked -> 200 (%d %s)" % (r.status_code, r.text[:200]))
    c, leaf, scores = output(j, "contributions"), output(j, "leaf"), output(j, "output-0")
    check(c is not None and c["datatype"] == "FP32" and c["shape"] == [n, F + 1], "contributions FP32 [rows, F+1]")
    check(leaf is not None and leaf["datatype"] == "INT32" and leaf["shape"] == [n, len(want_leaf[0])],
          "leaf INT32 [rows, trees]")
    got_c = split(c["data"], F + 1)
    check(rows_close(got_c, want_c), "contributions equal XGBoost's pred_contribs (1e-5), %d rows" % n)
    check(split(leaf["data"], len(want_leaf[0])) == want_leaf, "leaf equals XGBoost's pred_leaf exactly")
    sums = [sum(math.nan if v is None else v for v in row) for row in got_c]
    check(all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(sums, scores["data"])),
          "each row's contributions sum to its margin (the logitraw score)")
    expl = j["parameters"].get("explanations")
    check(isinstance(expl, list) and len(expl) == n and all(e["explained_by"] == "plain" or e["explained_by"] ==
                                                            "primary" for e in expl),
          "explanations: one entry per row, explained_by the answering stage")
    check(all("reasons" not in e for e in expl), "no reason codes unless asked")

    # No explanation output asked: the answer is as before (output-0 only).
    r = infer("plain", body(rows[:2]))
    j = r.json()
    check([o["name"] for o in j["outputs"]] == ["output-0"] and "explanations" not in j["parameters"],
          "without outputs: scores only, no explanations")

    # Binary tensors: both explanation outputs in the binary section, in order.
    b = body(rows[:3], ["leaf", "contributions"])
    b["outputs"][0]["parameters"] = {"binary_data": True}
    b["outputs"][1]["parameters"] = {"binary_data": True}
    r = infer("plain", b)
    hl = int(r.headers.get("Inference-Header-Content-Length", "0"))
    head = json.loads(r.content[:hl])
    trees = len(want_leaf[0])
    lsize, csize = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    bl = struct.unpack("<%di" % (3 * trees), r.content[hl:hl + lsize])
    bc = struct.unpack("<%df" % (3 * (F + 1)), r.content[hl + lsize:hl + lsize + csize])
    check(lsize == 3 * trees * 4 and csize == 3 * (F + 1) * 4 and list(bl) == sum(want_leaf[:3], []) and
          rows_close(split(list(bc), F + 1), want_c[:3]), "binary leaf then contributions")

    # --- reason codes -----------------------------------------------------
    k = 3
    r = infer("plain", body(rows, params={"reason_codes": k}))
    expl = r.json()["parameters"]["explanations"]
    ok = True
    for e, w, x in zip(expl, want_c, rows):
        top = sorted(range(F), key=lambda f: (-abs(w[f]), f))[:k]
        got = e["reasons"]
        ok = ok and [g["index"] for g in got] == top and all(
            close(g["contribution"], w[g["index"]]) and g["feature"] == "f%d" % g["index"] and
            (x[g["index"]] is None and g["value"] is None or
             close(g["value"], x[g["index"]], 1e-6 * max(1.0, abs(x[g["index"]])))) for g in got)
    check(r.status_code == 200 and ok, "reason codes: the top %d |contribution| per row, with value and feature" % k)
    mags = [abs(g["contribution"]) for e in expl for g in e["reasons"][:2]]
    check(all(abs(e["reasons"][0]["contribution"]) >= abs(e["reasons"][1]["contribution"]) >=
              abs(e["reasons"][2]["contribution"]) for e in expl) and len(mags) == 2 * n,
          "reason codes ordered by magnitude")
    r = infer("plain", body(rows, params={"reason_codes": k, "reason_mode": "up"}))
    expl = r.json()["parameters"]["explanations"]
    ok = True
    for e, w in zip(expl, want_c):
        top = [f for f in sorted(range(F), key=lambda f: (-w[f], f)) if w[f] > 0][:k]
        ok = ok and [g["index"] for g in e["reasons"]] == top
    check(ok, "reason_mode up: only positive contributions, largest first")

    # --- a degraded row is explained by the fallback's model --------------
    # (on the fallback's fixture rows; the primary's contributions on the
    # same rows, from the plain model, must differ for this to mean anything)
    r = infer("chain", body(backup_rows[:5], ["output-0", "contributions", "leaf"], {"reason_codes": 1}))
    j = r.json()
    expl = j["parameters"].get("explanations", [])
    check(j["parameters"].get("degraded") is True and len(expl) == 5 and
          all(e["explained_by"] == "fallback" for e in expl), "degraded rows: explained_by the fallback stage")
    got_c = split(output(j, "contributions")["data"], F + 1)
    primary_c = split(output(infer("plain", body(backup_rows[:5], ["contributions"])).json(), "contributions")["data"],
                      F + 1)
    check(rows_close(got_c, backup_c[:5]) and not rows_close(got_c, primary_c, 1e-3),
          "degraded rows: contributions are the fallback model's (binary_logistic), not the primary's")
    check(split(output(j, "leaf")["data"], len(backup_leaf[0]))[:5] == [row for row in backup_leaf[:5]],
          "degraded rows: leaf indices are the fallback model's")
    check(all(e["reasons"][0]["index"] == max(range(F), key=lambda f: (abs(w[f]), -f))
              for e, w in zip(expl, backup_c)), "degraded rows: reason codes from the fallback's contributions")

    # --- a row answered by a default stage has no explanation -------------
    r = infer("dflt", body(rows[:2], ["output-0", "contributions", "leaf"], {"reason_codes": 2}))
    j = r.json()
    expl = j["parameters"].get("explanations", [])
    c, leaf = output(j, "contributions"), output(j, "leaf")
    check(r.status_code == 200 and output(j, "output-0")["data"] == [0.25, 0.25], "default stage: scores answered")
    check(c["shape"] == [2, F + 1] and all(v is None for v in c["data"]), "default stage: contributions all null")
    check(all(v == -1 for v in leaf["data"]) and len(leaf["data"]) == 2 * trees, "default stage: leaf all -1")
    check(len(expl) == 2 and all(e["explained_by"] == "" and e["reasons"] == [] and
                                 "constant" in e.get("reasons_unavailable", "") for e in expl),
          "default stage: reasons_unavailable names the stage, no explained_by")

    # --- bad parameters: 400 naming the parameter, the server keeps serving
    for what, params in [("negative", {"reason_codes": -1}), ("string", {"reason_codes": "3"}),
                         ("huge", {"reason_codes": 2 ** 40}), ("more than features", {"reason_codes": 1000}),
                         ("fraction", {"reason_codes": 1.5}), ("bool", {"reason_codes": True})]:
        r = infer("plain", body(rows[:1], params=params))
        err = r.json().get("error", "")
        shown = {-1: "got -1", "3": "got a string", 2 ** 40: "got %d" % 2 ** 40}.get(params["reason_codes"], "")
        check(r.status_code == 400 and "parameters.reason_codes" in err and shown in err,
              "reason_codes %s -> 400 naming it (%d %s)" % (what, r.status_code, r.text[:120]))
    r = infer("plain", body(rows[:1], params={"reason_codes": 1, "reason_mode": "down"}))
    check(r.status_code == 400 and "parameters.reason_mode" in r.json().get("error", ""), "bad reason_mode -> 400")
    r = infer("plain", body(rows[:1], ["shap"]))
    check(r.status_code == 400 and "unknown output 'shap'" in r.json().get("error", ""), "unknown output -> 400")
    r = infer("plain", body(rows[:1], ["contributions"]))
    check(r.status_code == 200 and rows_close(split(output(r.json(), "contributions")["data"], F + 1), want_c[:1]),
          "still serving after the bad requests")

    # --- gRPC -------------------------------------------------------------
    ch = grpc.insecure_channel(srv.first["grpc"])
    grpc.channel_ready_future(ch).result(timeout=10)
    infer_rpc = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                               request_serializer=pb.ModelInferRequest.SerializeToString,
                               response_deserializer=pb.ModelInferResponse.FromString)
    def grpc_req(model, raw=False, k=None, mode=None, data=rows):
        flat = [math.nan if v is None else v for row in data for v in row]
        t = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[len(data), F])
        req = pb.ModelInferRequest(model_name=model, inputs=[t],
                                   outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=o)
                                            for o in ("contributions", "leaf")])
        if raw:
            req.raw_input_contents.append(struct.pack("<%df" % len(flat), *flat))
        else:
            req.inputs[0].contents.fp32_contents.extend(flat)
        if k is not None:
            if isinstance(k, str):
                req.parameters["reason_codes"].string_param = k
            else:
                req.parameters["reason_codes"].int64_param = k
        if mode is not None:
            req.parameters["reason_mode"].string_param = mode
        return req

    g = infer_rpc(grpc_req("plain", k=2), timeout=10)
    names = [o.name for o in g.outputs]
    gc = g.outputs[names.index("contributions")] if "contributions" in names else None
    gl = g.outputs[names.index("leaf")] if "leaf" in names else None
    check(gc is not None and gc.datatype == "FP32" and list(gc.shape) == [n, F + 1] and
          rows_close(split(list(gc.contents.fp32_contents), F + 1), want_c), "gRPC contributions (fp32_contents)")
    check(gl is not None and gl.datatype == "INT32" and
          split(list(gl.contents.int_contents), trees) == want_leaf, "gRPC leaf (int_contents)")
    gexpl = json.loads(g.parameters["explanations"].string_param or "null")
    check(isinstance(gexpl, list) and len(gexpl) == n and
          [x["index"] for x in gexpl[0]["reasons"]] == sorted(range(F), key=lambda f: (-abs(want_c[0][f]), f))[:2],
          "gRPC explanations: a JSON string parameter with the reason codes")
    g = infer_rpc(grpc_req("plain", raw=True), timeout=10)
    rc = struct.unpack("<%df" % (n * (F + 1)), g.raw_output_contents[0])
    rl = struct.unpack("<%di" % (n * trees), g.raw_output_contents[1])
    check(len(g.raw_output_contents) == 2 and rows_close(split(list(rc), F + 1), want_c) and
          split(list(rl), trees) == want_leaf, "gRPC raw: contributions then leaf in raw_output_contents")
    g = infer_rpc(grpc_req("chain", data=backup_rows), timeout=10)
    gexpl = json.loads(g.parameters["explanations"].string_param or "[]")
    check(all(e["explained_by"] == "fallback" for e in gexpl) and
          rows_close(split(list(g.outputs[0].contents.fp32_contents), F + 1), backup_c),
          "gRPC degraded rows: the fallback's contributions")
    for what, k, mode in [("negative", -2, None), ("string", "2", None), ("huge", 2 ** 40, None),
                          ("mode", 1, "sideways")]:
        try:
            infer_rpc(grpc_req("plain", k=k, mode=mode), timeout=10)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
        field = "reason_mode" if mode else "reason_codes"
        check(code == grpc.StatusCode.INVALID_ARGUMENT and "parameters." + field in details and
              (not isinstance(k, int) or k >= 0 or "got %d" % k in details),
              "gRPC %s %s -> INVALID_ARGUMENT naming it (%s %s)" % (field, what, code, details[:100]))
    g = infer_rpc(grpc_req("plain"), timeout=10)
    check(len(g.outputs) == 2, "gRPC still serving after the bad requests")
    ch.close()
finally:
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)
check.exit()
