#!/usr/bin/python3
"""keel serve's repository extension and bearer-token auth, against real
processes on loopback: POST /v2/repository/index, .../models/{m}/load|unload
(a model unloaded stops answering, loads again, a folder added after the
start is loaded on request, a bad model file is refused with the old set
still serving); a missing or wrong token gets 401, no token configured
disables the repository endpoints (403); a traversal attempt gets 400 and
touches nothing; --auth-infer guards inference over REST and gRPC.
Usage: test_serve_repository.py KEEL_BINARY MODEL_JSON"""
import http.client
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()
tmp = tempfile.mkdtemp(prefix="keel_repo_")
repo = os.path.join(tmp, "models")
for folder in ["a", "b/1", "b/2"]:
    os.makedirs(os.path.join(repo, folder))
    shutil.copy(model, os.path.join(repo, folder, "model.json"))
os.makedirs(os.path.join(tmp, "outside"))
shutil.copy(model, os.path.join(tmp, "outside", "model.json"))
TOKEN = "s3cret-token-0123456789"
token_file = os.path.join(tmp, "token")
with open(token_file, "w") as f:
    f.write(TOKEN + "\n")
AUTH = {"Authorization": "Bearer " + TOKEN}


def raw_post(srv, path, headers):
    """POST with the path exactly as given (no client-side normalisation)."""
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    c.request("POST", path, body=b"", headers=headers)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


srv = Server(keel, "--models", repo, "--auth-token-file", token_file)
try:
    b = srv.base
    features = requests.get(b + "/v2/models/a", timeout=10).json()["inputs"][0]["shape"][1]
    body = {"inputs": [{"name": "input-0", "shape": [1, features], "datatype": "FP32", "data": [0.5] * features}]}

    def infer(name, **kw):
        return requests.post(b + "/v2/models/%s/infer" % name, json=body, timeout=10, **kw).status_code

    r = requests.post(b + "/v2/repository/index", timeout=10)
    check(r.status_code == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer") and
          "bearer token" in r.json()["error"], "index without a token -> 401 with WWW-Authenticate")
    for bad in ["Bearer wrong", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN[:-1] + "X", "Bearer " + TOKEN + "x", TOKEN,
                "Basic " + TOKEN]:
        r = requests.post(b + "/v2/repository/index", headers={"Authorization": bad}, timeout=10)
        check(r.status_code == 401, "Authorization %r -> 401" % bad[:12])
    r = requests.post(b + "/v2/repository/models/a/unload", timeout=10)
    check(r.status_code == 401 and infer("a") == 200, "unload without a token -> 401, model still served")
    idx = requests.post(b + "/v2/repository/index", headers=AUTH, timeout=10).json()
    check(sorted((e["name"], e["version"], e["state"]) for e in idx) ==
          [("a", "1", "READY"), ("b", "1", "READY"), ("b", "2", "READY")], "index lists every version READY")
    check(requests.post(b + "/v2/repository/index", headers={"Authorization": "bearer " + TOKEN},
                        timeout=10).status_code == 200, "the scheme is case-insensitive")
    check(infer("b") == 200 and requests.get(b + "/v2/models/b", timeout=10).json()["versions"] == ["1", "2"],
          "version folders served")

    r = requests.post(b + "/v2/repository/models/a/unload", headers=AUTH, timeout=10)
    check(r.status_code == 200, "unload a -> 200")
    check(infer("a") == 404 and requests.get(b + "/v2/models/a/ready", timeout=10).status_code == 404,
          "unloaded: infer and ready 404")
    idx = {(e["name"], e["version"]): e for e in requests.post(b + "/v2/repository/index", headers=AUTH,
                                                               timeout=10).json()}
    check(idx[("a", "1")]["state"] == "UNAVAILABLE" and idx[("a", "1")]["reason"] == "unloaded",
          "index: a UNAVAILABLE, unloaded")
    check(infer("b") == 200, "others still served")
    r = requests.post(b + "/v2/repository/models/a/load", headers=AUTH, timeout=10)
    check(r.status_code == 200 and infer("a") == 200, "load a again -> served")

    os.makedirs(os.path.join(repo, "c"))
    shutil.copy(model, os.path.join(repo, "c", "model.json"))
    idx = {e["name"]: e for e in requests.post(b + "/v2/repository/index", headers=AUTH, timeout=10).json()}
    check(idx["c"]["state"] == "UNAVAILABLE" and idx["c"]["reason"] == "not loaded" and infer("c") == 404,
          "a folder added after the start is listed, not served")
    r = requests.post(b + "/v2/repository/models/c/load", headers=AUTH, timeout=10)
    check(r.status_code == 200 and infer("c") == 200, "load c -> served")
    os.makedirs(os.path.join(repo, "d"))
    with open(os.path.join(repo, "d", "model.json"), "w") as f:
        f.write('{"learner": ')
    r = requests.post(b + "/v2/repository/models/d/load", headers=AUTH, timeout=10)
    check(r.status_code == 400 and "d" in r.json()["error"] and infer("a") == 200,
          "bad model file -> 400 (%s), still serving" % r.text[:80])
    r = requests.post(b + "/v2/repository/models/zz/load", headers=AUTH, timeout=10)
    check(r.status_code == 404, "load of no folder -> 404")

    # Traversal: nothing outside the repository is reached.
    for path in ["/v2/repository/models/..%2Foutside/load", "/v2/repository/models/../outside/load",
                 "/v2/repository/models/%2Ftmp%2Foutside/load", "/v2/repository/models/a%00/load",
                 "/v2/repository/models/../../" + tmp.strip("/") + "/outside/load"]:
        status, text = raw_post(srv, path, AUTH)
        check(status == 400 and b"use [A-Za-z0-9_.-]" in text, "traversal %s -> 400 (%d)" % (path, status))
    names = {e["name"] for e in requests.post(b + "/v2/repository/index", headers=AUTH, timeout=10).json()}
    check("outside" not in names and requests.get(b + "/v2/models/outside", timeout=10).status_code == 404,
          "no model outside the repository was loaded")
    check(requests.get(b + "/v2/repository/index", headers=AUTH, timeout=10).status_code == 405, "GET index -> 405")
finally:
    srv.stop()
log = "".join(srv.lines)
check('"event":"unload","model":"a"' in log and '"event":"load","model":"c"' in log, "load and unload logged")

shutil.rmtree(os.path.join(repo, "d"))  # a bad model fails a start, by design

# No token configured: the repository endpoints are disabled, inference open.
srv = Server(keel, "--models", repo)
try:
    r = requests.post(srv.base + "/v2/repository/models/a/unload", headers=AUTH, timeout=10)
    check(r.status_code == 403 and "disabled" in r.json()["error"], "no token configured: unload -> 403")
    check(requests.post(srv.base + "/v2/repository/index", timeout=10).status_code == 403, "index -> 403")
    check(requests.post(srv.base + "/v2/models/a/infer", json=body, timeout=10).status_code == 200, "infer open")
finally:
    srv.stop()

# --auth-infer: inference needs the token, over REST and gRPC; probes do not.
srv = Server(keel, "--models", repo, "--auth-token-file", token_file, "--auth-infer")
try:
    b = srv.base
    check(infer("a") == 401 and infer("a", headers={"Authorization": "Bearer nope-nope-nope-nope"}) == 401,
          "--auth-infer: infer without or with a wrong token -> 401")
    check(infer("a", headers=AUTH) == 200, "with the token -> 200")
    check(requests.get(b + "/v2/health/ready", timeout=10).status_code == 200 and
          requests.get(b + "/v2/models/a", timeout=10).status_code == 200, "health and metadata stay open")
    proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
    subprocess.run(["protoc", "--proto_path=" + proto_dir, "--python_out=" + tmp,
                    os.path.join(proto_dir, "open_inference_grpc.proto")], check=True, timeout=60)
    sys.path.insert(0, tmp)
    pb = importlib.import_module("open_inference_grpc_pb2")
    ch = grpc.insecure_channel(srv.first["grpc"])
    call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                          request_serializer=pb.ModelInferRequest.SerializeToString,
                          response_deserializer=pb.ModelInferResponse.FromString)
    t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP32", shape=[1, features])
    t.contents.fp32_contents.extend([0.5] * features)
    req = pb.ModelInferRequest(model_name="a", inputs=[t])
    try:
        call(req, timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
    check(code == grpc.StatusCode.UNAUTHENTICATED, "gRPC without the token -> UNAUTHENTICATED (%s)" % code)
    r = call(req, timeout=10, metadata=[("authorization", "Bearer " + TOKEN)])
    check(len(r.outputs[0].contents.fp32_contents) == 1, "gRPC with the token -> answered")
    ch.close()
finally:
    srv.stop()
check.exit()
