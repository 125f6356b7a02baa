"""Model updates in tests: real ONNX classifiers that fail on bright frames, packed as update archives,
and a file server that honours HTTP Range (resumed downloads), can drop a transfer half way or garble it."""

from __future__ import annotations

import hashlib
import io
import ssl
import subprocess
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

LABELS = ["empty", "part", "scratch", "stain"]


def classifier_onnx(error_above: float, seed: int = 0) -> bytes:
    """A 1x3x32x32 -> 1x4 softmax classifier whose Reshape fails when the frame's mean input exceeds `error_above`.

    The failure is a real onnxruntime error on real input, so the agent counts it as an inference error.
    """
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(seed).normal(0, 0.05, (3 * 32 * 32, 4)).astype(np.float32)
    init = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array([error_above], dtype=np.float32), "thr"),
        numpy_helper.from_array(np.array([1, 4], dtype=np.int64), "shape"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
    ]
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["soft"], axis=1),
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Greater", ["mean", "thr"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["extra"], to=TensorProto.INT64),
        helper.make_node("Concat", ["zero", "extra"], ["grow"], axis=0),
        helper.make_node("Add", ["shape", "grow"], ["target"]),
        helper.make_node("Reshape", ["soft", "target"], ["probs"]),
    ]
    graph = helper.make_graph(
        nodes, "bright-fails", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])], init,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def model_folder(into: Path, version: str, error_above: float = 10.0, self_test_off: float = 0.0) -> Path:
    """A model folder the agent loads: manifest with a self_test, the ONNX file, the samples .npz.

    `self_test_off` shifts the expected outputs, making a model whose self-test fails.
    """
    import onnxruntime as ort

    folder = into / f"tiny-classifier-{version}"
    folder.mkdir(parents=True)
    onnx_bytes = classifier_onnx(error_above)
    (folder / "model.onnx").write_bytes(onnx_bytes)
    sample = np.full((1, 3, 32, 32), -0.5, dtype=np.float32)  # a dark frame: never over the error threshold
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": sample})[0] + np.float32(self_test_off)
    np.savez(folder / "selftest.npz", input_0=sample, output_0=expected)
    manifest: dict[str, Any] = {
        "schema_version": 1, "name": "tiny-classifier", "version": version, "task": "classify",
        "description": "test classifier that fails on bright frames",
        "files": {"onnx-fp32": {"path": "model.onnx", "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
                                "format": "onnx", "precision": "fp32"}},
        "default_variant": "onnx-fp32",
        "inputs": [{"name": "image", "shape": [1, 3, 32, 32], "dtype": "float32", "layout": "NCHW", "color": "RGB",
                    "scale": 1 / 127.5, "mean": [1.0, 1.0, 1.0], "std": [1.0, 1.0, 1.0]}],
        "outputs": [{"name": "probs", "shape": [1, 4], "dtype": "float32"}],
        "decoder": "softmax", "labels": LABELS, "thresholds": {"score": 0.3},
        "self_test": {"file": "selftest.npz", "atol": 1e-4, "rtol": 1e-3},
    }  # fmt: skip
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def brightness_images(folder: Path, levels: int = 10) -> Path:
    """Frames of constant brightness 0, 25, 50 ... 225: the classifier's input mean is brightness/127.5 - 1."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(levels):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((40, 40, 3), i * 25, dtype=np.uint8))
    return folder


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FileServer:
    """Serves `files` by path on loopback, with Range. `drop_after` cuts each full transfer after N bytes once;
    `garble` flips bytes in the body (a corrupt download whose length is right)."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: int | None = None
    garble: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  # a server context: https on loopback

    def __enter__(self) -> FileServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{path}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append({"path": self.path, "range": self.headers.get("Range", "")})
            body = server.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            if server.garble:
                body = bytes(b ^ 0x5A for b in body)
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if server.drop_after is not None and not start:
                self.wfile.write(body[: server.drop_after])
                server.drop_after = None
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def make_pki(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA and a server certificate for 127.0.0.1 made with openssl: (CA file, server SSL context)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test fleet CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.crt", folder / "server.key")
    return folder / "ca.crt", context
