#!/usr/bin/python3
"""keel serve's gRPC port over TLS and mTLS, with certificates made at test
time by the openssl CLI (a CA, a server certificate for 127.0.0.1, a client
certificate), against a real process on loopback: a TLS client that trusts
the CA is answered, a plaintext client is not; with client_ca_file a client
without a certificate is refused and one with it answered; a config naming
a missing key fails the start with the JSON path.
Usage: test_grpc_tls.py KEEL_BINARY MODEL_JSON"""
import json
import os
import subprocess
import sys
import tempfile

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()
tmp = tempfile.mkdtemp(prefix="keel_tls_")


def path(name):
    return os.path.join(tmp, name)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("ca.key"), "-out", path("ca.pem"),
        "-days", "1", "-subj", "/CN=keel-test-ca")
with open(path("san.ext"), "w") as f:
    f.write("subjectAltName=IP:127.0.0.1\n")
for who in ["server", "client"]:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", path(who + ".key"), "-out", path(who + ".csr"),
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", path(who + ".csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
            "-CAcreateserial", "-out", path(who + ".pem"), "-days", "1", "-extfile", path("san.ext"))


def read(name):
    with open(path(name), "rb") as f:
        return f.read()


def live(channel):
    call = channel.unary_unary("/inference.GRPCInferenceService/ServerLive",
                               request_serializer=lambda _: b"", response_deserializer=lambda b: b)
    try:
        call(None, timeout=5)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def config(name, **tls):
    with open(path(name), "w") as f:
        json.dump({"grpc_tls": tls}, f)
    return path(name)


srv = Server(keel, "--model", "m=" + model, "--config", config("tls.json", cert_file="server.pem",
                                                                key_file="server.key"))
try:
    check(srv.first.get("grpc_tls") is True, "first log line says gRPC is on TLS")
    target = srv.first["grpc"]
    tls = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"))
    check(live(grpc.secure_channel(target, tls)) == grpc.StatusCode.OK, "TLS client trusting the CA: answered")
    check(live(grpc.insecure_channel(target)) != grpc.StatusCode.OK, "plaintext client: not answered")
    other = grpc.ssl_channel_credentials(root_certificates=read("client.pem"))
    check(live(grpc.secure_channel(target, other)) != grpc.StatusCode.OK, "client not trusting the CA: refused")
finally:
    srv.stop()

srv = Server(keel, "--model", "m=" + model, "--config", config("mtls.json", cert_file="server.pem",
                                                                key_file="server.key", client_ca_file="ca.pem"))
try:
    target = srv.first["grpc"]
    no_cert = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"))
    check(live(grpc.secure_channel(target, no_cert)) != grpc.StatusCode.OK, "mTLS: client without a certificate refused")
    with_cert = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"), private_key=read("client.key"),
                                             certificate_chain=read("client.pem"))
    check(live(grpc.secure_channel(target, with_cert)) == grpc.StatusCode.OK, "mTLS: client certificate accepted")
finally:
    srv.stop()

bad = subprocess.run([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--grpc-port", "0", "--config",
                      config("bad.json", cert_file="server.pem", key_file="nope.key")],
                     capture_output=True, text=True, timeout=30)
check(bad.returncode == 2 and "grpc_tls.key_file: cannot read" in bad.stderr, "missing key: start fails (%s)" %
      bad.stderr.strip()[:100])
check.exit()
