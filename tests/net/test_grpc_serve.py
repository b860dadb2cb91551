#!/usr/bin/python3
"""End-to-end test of `keel serve` over gRPC with a client that is not ours:
Debian's python3-grpcio, with the message classes generated at test time by
protoc from Keel's proto/open_inference_grpc.proto (grpc_tools is not
packaged, so calls go through grpcio's generic unary_unary with those
classes' serializers). Every RPC, the error codes, typed and raw contents,
the gRPC deadline, drain. Loopback only; the server is stopped by PID.
Usage: test_grpc_serve.py KEEL_BINARY MODEL_JSON"""
import importlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

import grpc
import requests

keel, model = sys.argv[1], sys.argv[2]
proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
gen = tempfile.mkdtemp(prefix="keel_grpc_py_")
subprocess.run(["protoc", "--proto_path=" + proto_dir, "--python_out=" + gen,
                os.path.join(proto_dir, "open_inference_grpc.proto")], check=True, timeout=60)
sys.path.insert(0, gen)
pb = importlib.import_module("open_inference_grpc_pb2")
failures = []


def check(ok, what):
    print(("ok     " if ok else "FAILED ") + what, flush=True)
    if not ok:
        failures.append(what)


def start(*extra):
    p = subprocess.Popen([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--grpc-port", "0",
                          "--drain-delay-ms", "300", "--drain-timeout-ms", "3000", *extra],
                         stdout=subprocess.PIPE, text=True)
    return p, json.loads(p.stdout.readline())


def stubs(channel):
    def rpc(name, req, resp):
        return channel.unary_unary("/inference.GRPCInferenceService/" + name,
                                   request_serializer=req.SerializeToString, response_deserializer=resp.FromString)
    return {n: rpc(n, getattr(pb, n + "Request"), getattr(pb, n + "Response"))
            for n in ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]}


def code_of(call, *args, **kw):
    try:
        call(*args, **kw)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


procs = []
try:
    proc, first = start()
    procs.append(proc)
    check(first["event"] == "listening" and "grpc" in first, "first log line names the gRPC address")
    base = "http://" + first["http"]
    ch = grpc.insecure_channel(first["grpc"])
    rpc = stubs(ch)
    check(rpc["ServerLive"](pb.ServerLiveRequest(), timeout=10).live, "ServerLive")
    check(rpc["ServerReady"](pb.ServerReadyRequest(), timeout=10).ready, "ServerReady")
    check(rpc["ModelReady"](pb.ModelReadyRequest(name="m"), timeout=10).ready, "ModelReady")
    check(rpc["ModelReady"](pb.ModelReadyRequest(name="m", version="1"), timeout=10).ready, "ModelReady version 1")
    sm = rpc["ServerMetadata"](pb.ServerMetadataRequest(), timeout=10)
    check(sm.name == "keel" and "binary_tensor_data" in sm.extensions, "ServerMetadata")
    mm = rpc["ModelMetadata"](pb.ModelMetadataRequest(name="m"), timeout=10)
    features = mm.inputs[0].shape[1]
    check(mm.name == "m" and list(mm.versions) == ["1"] and mm.inputs[0].shape[0] == -1 and
          mm.outputs[0].name == "output-0", "ModelMetadata")

    # The REST answer for the same rows is the reference.
    rows = [[0.25 * (f % 4) for f in range(features)], [1.5] * features]
    flat = [v for r in rows for v in r]
    rest = requests.post(base + "/v2/models/m/infer", json={"inputs": [
        {"name": "input-0", "shape": [2, features], "datatype": "FP32", "data": flat}]}).json()
    # REST writes shortest round-trip decimals; as float32 they are exact.
    want = [struct.unpack("<f", struct.pack("<f", v))[0] for v in rest["outputs"][0]["data"]]

    def tensor(datatype, shape, **contents):
        t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype=datatype, shape=shape)
        if contents:
            t.contents.CopyFrom(pb.InferTensorContents(**contents))
        return t

    req = pb.ModelInferRequest(model_name="m", id="g-1", inputs=[tensor("FP32", [2, features], fp32_contents=flat)])
    r, call = rpc["ModelInfer"].with_call(req, timeout=10,
                                          metadata=[("traceparent",
                                                     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
    check(r.id == "g-1" and r.model_name == "m" and r.model_version == "1", "ModelInfer echoes id, model, version")
    check(list(r.outputs[0].shape) == [2, 1] and r.outputs[0].datatype == "FP32", "output shape and datatype")
    check(list(r.outputs[0].contents.fp32_contents) == want, "fp32_contents equal the REST answer")
    check(r.parameters["stage"].string_param == "primary" and r.parameters["degraded"].bool_param is False,
          "Keel answer fields in parameters")
    check(len(r.raw_output_contents) == 0, "typed request, typed answer")

    raw = pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", [2, features])],
                               raw_input_contents=[struct.pack("<%df" % len(flat), *flat)])
    r = rpc["ModelInfer"](raw, timeout=10)
    check(len(r.raw_output_contents) == 1 and list(struct.unpack("<2f", r.raw_output_contents[0])) == want and
          len(r.outputs[0].contents.fp32_contents) == 0, "raw_input_contents -> raw_output_contents")
    one = pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", [features], fp32_contents=rows[0])])
    r = rpc["ModelInfer"](one, timeout=10)
    check(list(r.outputs[0].shape) == [1] and list(r.outputs[0].contents.fp32_contents) == want[:1],
          "shape [features] answers [width]")
    r = rpc["ModelInfer"](pb.ModelInferRequest(model_name="m", inputs=[
        tensor("FP64", [2, features], fp64_contents=flat)]), timeout=10)
    check(list(r.outputs[0].contents.fp32_contents) == want, "FP64 fp64_contents")
    ints = [f % 3 for f in range(features)]
    r_int = rpc["ModelInfer"](pb.ModelInferRequest(model_name="m", inputs=[
        tensor("INT64", [1, features], int64_contents=ints)]), timeout=10)
    r_flt = rpc["ModelInfer"](pb.ModelInferRequest(model_name="m", inputs=[
        tensor("FP32", [1, features], fp32_contents=[float(v) for v in ints])]), timeout=10)
    check(r_int.outputs[0].contents.fp32_contents == r_flt.outputs[0].contents.fp32_contents,
          "INT64 int64_contents converted exactly")
    sel = pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", [2, features], fp32_contents=flat)],
                               outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="output-0")])
    sel.outputs[0].parameters["binary_data"].bool_param = True
    r = rpc["ModelInfer"](sel, timeout=10)
    check(len(r.raw_output_contents) == 1 and list(struct.unpack("<2f", r.raw_output_contents[0])) == want,
          "outputs[0].parameters.binary_data asks for raw output")

    INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    big = [0.0] * features
    big[2] = 0
    bad_int = [16777217] + [0] * (features - 1)
    cases = [
        ("unknown model", pb.ModelInferRequest(model_name="zz", inputs=req.inputs), NOT_FOUND, "unknown model 'zz'"),
        ("unknown version", pb.ModelInferRequest(model_name="m", model_version="9", inputs=req.inputs), NOT_FOUND,
         "no version '9'"),
        ("traversal name", pb.ModelInferRequest(model_name="../m", inputs=req.inputs), INVALID, "model name"),
        ("no inputs", pb.ModelInferRequest(model_name="m"), INVALID, "inputs: expected one tensor"),
        ("wrong features", pb.ModelInferRequest(model_name="m", inputs=[
            tensor("FP32", [1, 3], fp32_contents=[1, 2, 3])]), INVALID, "takes %d" % features),
        ("element count", pb.ModelInferRequest(model_name="m", inputs=[
            tensor("FP32", [2, features], fp32_contents=flat[:-1])]), INVALID, "fp32_contents: %d elements" % (
            len(flat) - 1)),
        ("wrong contents field", pb.ModelInferRequest(model_name="m", inputs=[
            tensor("INT64", [2, features], fp32_contents=flat)]), INVALID, "int64_contents: 0 elements"),
        ("inexact INT64", pb.ModelInferRequest(model_name="m", inputs=[
            tensor("INT64", [1, features], int64_contents=bad_int)]), INVALID,
         "inputs[0].data: row 0, feature 0: 16777217 has no exact FP32 value"),
        ("INT8 out of range", pb.ModelInferRequest(model_name="m", inputs=[
            tensor("INT8", [1, features], int_contents=[300] + [0] * (features - 1))]), INVALID,
         "300 out of range for INT8"),
        ("BYTES", pb.ModelInferRequest(model_name="m", inputs=[tensor("BYTES", [1, features])]), INVALID,
         "BYTES is not supported"),
        ("negative shape", pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", [-1, features])]), INVALID,
         "shape[0]: negative"),
        ("3-d shape", pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", [1, 1, features])]), INVALID,
         "3 dimensions"),
        ("raw size", pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", [2, features])],
                                          raw_input_contents=[b"\0" * 7]), INVALID, "raw_input_contents[0]: 7 bytes"),
        ("raw and contents", pb.ModelInferRequest(model_name="m", inputs=[
            tensor("FP32", [2, features], fp32_contents=flat)], raw_input_contents=raw.raw_input_contents), INVALID,
         "together with raw_input_contents"),
        ("no data", pb.ModelInferRequest(model_name="m", inputs=[tensor("FP32", [2, features])]), INVALID,
         "contents: missing"),
        ("unknown output", pb.ModelInferRequest(model_name="m", inputs=req.inputs, outputs=[
            pb.ModelInferRequest.InferRequestedOutputTensor(name="nope")]), INVALID, "unknown output 'nope'"),
    ]
    for what, request, want_code, want_text in cases:
        code, details = code_of(rpc["ModelInfer"], request, timeout=10)
        check(code == want_code and want_text in details, "%s -> %s (%s: %s)" % (what, want_code, code, details))
    code, details = code_of(rpc["ModelMetadata"], pb.ModelMetadataRequest(name="zz"), timeout=10)
    check(code == NOT_FOUND, "ModelMetadata unknown model -> NOT_FOUND (%s)" % code)
    code, details = code_of(rpc["ModelReady"], pb.ModelReadyRequest(name="a/b"), timeout=10)
    check(code == INVALID, "ModelReady bad name -> INVALID_ARGUMENT (%s)" % code)
    check(rpc["ServerLive"](pb.ServerLiveRequest(), timeout=10).live, "still serving after the bad requests")

    metrics = requests.get(base + "/metrics").text
    check('keel_grpc_requests_total{method="ModelInfer",code="0"}' in metrics and
          'keel_grpc_requests_total{method="ModelInfer",code="3"}' in metrics, "gRPC calls by method and code")

    # Drain: ServerReady false at once, calls still answered during drain_delay, exit 0.
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    check(not rpc["ServerReady"](pb.ServerReadyRequest(), timeout=10).ready, "ServerReady false while draining")
    check(code_of(rpc["ModelInfer"], req, timeout=10)[0] == grpc.StatusCode.OK, "still scoring during drain_delay")
    rc = proc.wait(timeout=10)
    check(rc == 0, "exit 0 after drain (%s)" % rc)
    log = proc.stdout.read()
    check('"protocol":"grpc","method":"ModelInfer"' in log and '"trace_id":"0af7651916cd43dd8448eb211c80319c"' in log,
          "gRPC calls in the access log with the trace id")
    ch.close()

    # Deadlines: with default_timeout 0 a call without a gRPC deadline is
    # expired before scoring; one with a deadline uses it instead.
    cfg = os.path.join(gen, "serve.json")
    with open(cfg, "w") as f:
        json.dump({"default_timeout_ms": 0, "max_timeout_ms": 30000}, f)
    proc, first = start("--config", cfg)
    procs.append(proc)
    ch = grpc.insecure_channel(first["grpc"])
    rpc = stubs(ch)
    code, details = code_of(rpc["ModelInfer"], req)
    check(code == grpc.StatusCode.DEADLINE_EXCEEDED and "before scoring" in details,
          "no gRPC deadline, default 0 -> DEADLINE_EXCEEDED (%s %s)" % (code, details))
    check(code_of(rpc["ModelInfer"], req, timeout=10)[0] == grpc.StatusCode.OK, "grpc-timeout 10 s is the deadline")
    ch.close()
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=10) == 0, "second server exits 0")
finally:
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
