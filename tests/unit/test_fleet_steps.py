"""Each step of a model update alone: download (resume, cap), hashes, signatures, unpacking, self-test, probation."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from edge_agent.config import FleetConfig, OnnxRuntimeConfig
from edge_agent.errors import UpdateError
from edge_agent.fleet.download import Downloader
from edge_agent.fleet.probation import ProbationJudge, read_counts
from edge_agent.fleet.request import parse_request
from edge_agent.fleet.selftest import run_self_test
from edge_agent.fleet.store import ModelStore, PipelineState, Slot
from edge_agent.fleet.verify import check_sha256, check_signature
from edge_agent.metrics import AgentMetrics
from edge_agent.runtime.registry import load_model
from tests.support.fleet import FileServer, model_folder, pack, sha256

BODY = bytes(range(256)) * 400  # 100 KiB


def test_request_names_the_wrong_field() -> None:
    with pytest.raises(UpdateError, match=r"args\.sha256"):
        parse_request({"name": "m", "version": "2", "source": "https://x/m.tar.gz", "sha256": "abc"})
    with pytest.raises(UpdateError, match=r"args\.source: .*models:/name@alias"):
        parse_request({"name": "m", "version": "2", "source": "ftp://x", "sha256": "0" * 64})
    ok = parse_request({"name": "m", "version": "2", "source": "models:/m@production", "sha256": "0" * 64})
    assert ok.label == "m@2"


def test_a_cut_transfer_resumes_from_where_it_stopped(tmp_path: Path) -> None:
    dest = tmp_path / "slot.part"
    with FileServer({"m.tar.gz": BODY}, drop_after=30_000) as server:
        downloader = Downloader(None, 1 << 20, allow_plain_http=True)
        with pytest.raises(UpdateError, match="partial file kept"):
            downloader.fetch(server.url("m.tar.gz"), dest)
        assert dest.stat().st_size == 30_000
        downloader.fetch(server.url("m.tar.gz"), dest)
        assert server.requests[-1]["range"] == "bytes=30000-"
    assert dest.read_bytes() == BODY


def test_downloads_are_capped_and_plain_http_needs_consent(tmp_path: Path) -> None:
    with FileServer({"m.tar.gz": BODY}) as server:
        with pytest.raises(UpdateError, match="larger than 50000 bytes"):
            Downloader(None, 50_000, allow_plain_http=True).fetch(server.url("m.tar.gz"), tmp_path / "a.part")
        assert not (tmp_path / "a.part").exists()
        with pytest.raises(UpdateError, match="plain http is refused"):
            Downloader(None, 1 << 20).fetch(server.url("m.tar.gz"), tmp_path / "b.part")
        with pytest.raises(UpdateError, match="HTTP 404"):
            Downloader(None, 1 << 20, allow_plain_http=True).fetch(server.url("nope"), tmp_path / "c.part")


def test_sha256_and_ed25519_signature(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(BODY)
    check_sha256(archive, sha256(BODY))
    with pytest.raises(UpdateError, match="sha256 mismatch"):
        check_sha256(archive, "0" * 64)
    key = Ed25519PrivateKey.generate()
    public = tmp_path / "fleet.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    good = base64.b64encode(key.sign(BODY)).decode()
    check_signature(archive, good, public)
    with pytest.raises(UpdateError, match="signature does not match"):
        check_signature(archive, base64.b64encode(Ed25519PrivateKey.generate().sign(BODY)).decode(), public)
    with pytest.raises(UpdateError, match="requires signed models"):
        check_signature(archive, None, public)
    check_signature(archive, None, None)


def test_unpack_refuses_paths_out_of_the_store(tmp_path: Path) -> None:
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(evil.getvalue())
    with pytest.raises(UpdateError, match="cannot be unpacked"):
        ModelStore(tmp_path / "store").unpack(archive, "m", "1")
    assert not (tmp_path / "store" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_unpacked_model_and_state_survive_a_restart(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(pack(model_folder(tmp_path / "src", "2.0.0")))
    store = ModelStore(tmp_path / "store")
    folder = store.unpack(archive, "tiny-classifier", "2.0.0")
    assert (folder / "manifest.yaml").is_file() and folder == tmp_path / "store/tiny-classifier/2.0.0"
    state = PipelineState(Slot("tiny-classifier", "2.0.0", str(folder)), Slot("tiny-classifier", "1", "/x"), True)
    store.save("cls", state)
    again = ModelStore(tmp_path / "store").state("cls")
    assert again.current == state.current and again.previous == state.previous and again.probation


def test_self_test_passes_on_its_samples_and_fails_when_they_differ(tmp_path: Path) -> None:
    good = load_model(model_folder(tmp_path, "2.0.0"), None, OnnxRuntimeConfig())
    assert "within tolerance" in run_self_test(good)
    bad = load_model(model_folder(tmp_path, "3.0.0", self_test_off=0.05), None, OnnxRuntimeConfig())
    with pytest.raises(UpdateError, match=r"output 0 differs from the expected by up to 0\.05"):
        run_self_test(bad)


def test_probation_judge_rolls_back_a_doubled_error_rate() -> None:
    metrics = AgentMetrics(CollectorRegistry())
    metrics.items.labels("cls").inc(80)
    metrics.errors.labels("cls", "inference").inc(20)  # the old model: 20 % errors
    judge = ProbationJudge(FleetConfig(min_items=20), 100.0, read_counts(metrics.registry, "cls"))
    metrics.items.labels("cls").inc(12)
    metrics.errors.labels("cls", "inference").inc(8)  # 40 %, but only 20 results so far -> judged
    verdict = judge.verdict(read_counts(metrics.registry, "cls"))
    assert verdict == "error rate 40.0% over the bound 30.0% (previous model 20.0%)"
    same = ProbationJudge(FleetConfig(min_items=20), 100.0, read_counts(metrics.registry, "cls"))
    metrics.items.labels("cls").inc(40)
    metrics.errors.labels("cls", "inference").inc(10)
    assert same.verdict(read_counts(metrics.registry, "cls")) is None


def test_probation_judge_watches_latency_and_event_rate() -> None:
    metrics = AgentMetrics(CollectorRegistry())
    for _ in range(50):
        metrics.items.labels("cls").inc()
        metrics.stage_seconds.labels("cls", "total").observe(0.01)
    judge = ProbationJudge(FleetConfig(min_items=20), 100.0, read_counts(metrics.registry, "cls"))
    for _ in range(30):
        metrics.items.labels("cls").inc()
        metrics.stage_seconds.labels("cls", "total").observe(0.4)
    assert "p95 latency" in str(judge.verdict(read_counts(metrics.registry, "cls")))
    events = ProbationJudge(FleetConfig(min_items=20), 100.0, read_counts(metrics.registry, "cls"))
    for _ in range(30):
        metrics.items.labels("cls").inc()
        metrics.events.labels("cls", "defect").inc()
        metrics.stage_seconds.labels("cls", "total").observe(0.4)
    assert "events per result 1.00" in str(events.verdict(read_counts(metrics.registry, "cls")))


def test_a_signature_made_with_openssl_as_the_docs_say_verifies(tmp_path: Path) -> None:
    import shutil
    import subprocess

    pytest.importorskip("cryptography")
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    key, pub, archive = tmp_path / "fleet.key", tmp_path / "fleet.pub", tmp_path / "m.tar.gz"
    archive.write_bytes(BODY)
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    raw = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", str(key), "-rawin", "-in", str(archive)],
                         check=True, capture_output=True).stdout  # fmt: skip
    check_signature(archive, base64.b64encode(raw).decode(), pub)
    archive.write_bytes(BODY[:-1] + b"x")
    with pytest.raises(UpdateError, match="signature does not match"):
        check_signature(archive, base64.b64encode(raw).decode(), pub)


def test_https_downloads_trust_the_brokers_ca_and_nothing_else(tmp_path: Path) -> None:
    """The download context is mqtt.tls's: the site CA verifies the server; without it the server is refused."""
    import shutil

    from edge_agent.config import TlsConfig
    from edge_agent.tlsfiles import build_context
    from tests.support.fleet import make_pki

    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    ca, server_context = make_pki(tmp_path / "pki")
    with FileServer({"m.tar.gz": BODY}, tls=server_context) as server:
        site = Downloader(build_context(TlsConfig(ca_file=ca)), 1 << 20)
        assert site.fetch(server.url("m.tar.gz"), tmp_path / "ok.part").read_bytes() == BODY
        with pytest.raises(UpdateError, match="CERTIFICATE_VERIFY_FAILED"):
            Downloader(build_context(TlsConfig()), 1 << 20).fetch(server.url("m.tar.gz"), tmp_path / "no.part")
