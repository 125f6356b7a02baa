"""Results per second through the durable outbox into a real Mosquitto, beside bare paho QoS 1, in one run.

    python -m bench.outbox_throughput [--messages 20000] [--batch 64] [--json out.json]

Starts its own Mosquitto on a free loopback port. Each leg publishes the same ~300-byte result
payloads and waits until a subscriber has received every one:
- bare paho: publish(qos=1) in a loop, as fast as paho takes them (nothing survives a restart), with
  paho's window of 256 in flight (the outbox's default window) and, as a second leg, with no window;
- outbox: put_many() commits each batch to SQLite (WAL) before the forwarder sends it, and rows are
  deleted after PUBACK (a batch is what one sensor inference over queued windows produces);
- outbox, one result per commit: the worst case of a camera pipeline that commits every frame;
- each outbox leg with `synchronous=full` (the default: survives a power cut, one fsync per commit) and
  `synchronous=normal` (survives a killed process only), both in WAL mode; acknowledged rows move to the
  delivered archive, as on a device;
- resend: 10,000 archived messages asked for as one range (`Outbox.resend`, as `cmd/resend` does) until the
  subscriber has every replay.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from edge_agent import messages as m
from edge_agent.config import MqttConfig, OutboxConfig
from edge_agent.forwarder import Forwarder
from edge_agent.metrics import AgentMetrics
from edge_agent.mqtt import MqttLink
from edge_agent.outbox import Outbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Counter:
    """A subscriber in its own process (`mosquitto_sub`), as on a site: the consumer is not on the device.

    In the benchmark's own process it would compete with the publisher for the interpreter lock and
    measure the subscriber as much as the publisher.
    """

    def __init__(self, port: int, topic: str) -> None:
        self.port, self.topic = port, topic
        self.binary = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
        self.proc: subprocess.Popen[bytes] | None = None

    def expect(self, n: int) -> None:
        """Start a subscriber that exits once it has received n messages; returns when it is subscribed."""
        self.proc = subprocess.Popen(
            [self.binary, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", self.topic, "-C", str(n)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def wait(self, timeout_s: float) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise SystemExit("bench: the subscriber did not receive every message in time") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


def payloads(n: int) -> list[bytes]:
    now = datetime.now(timezone.utc)
    out = []
    for i in range(n):
        msg = m.ResultMessage(
            seq=i + 1,
            site="bench",
            device_id="dev",
            captured_at=now,
            pipeline="pump",
            model="sensor-anomaly@1",
            timing=m.Timing(preprocess_ms=0.01, inference_ms=0.05, decode_ms=0.0, logic_ms=0.01, total_ms=0.07),
            data=m.SensorAnomalyData(score=0.1, threshold=1.0, anomalous=False, window_start=now, window_end=now),
        )
        out.append(m.serialize_for_store(msg))
    return out


def bare_paho(port: int, topic: str, data: list[bytes], counter: Counter, inflight: int = 256) -> float:
    """paho's own window (the same 256 as the outbox's); inflight=0 lets paho send everything at once."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", port)
    client.loop_start()
    counter.expect(len(data))
    start = time.perf_counter()
    for body in data:
        client.publish(topic, body, qos=1)
    counter.wait(120)
    elapsed = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return len(data) / elapsed


def _outbox_parts(port: int, folder: Path, name: str, synchronous: str) -> tuple[Outbox, MqttLink, Forwarder]:
    metrics = AgentMetrics(CollectorRegistry())
    config = OutboxConfig(path=folder / f"outbox-{name}.db", max_rows=10_000_000, synchronous=synchronous)
    outbox = Outbox(config, metrics)
    mqtt = MqttConfig(host="127.0.0.1", port=port, max_inflight=256)
    link = MqttLink(mqtt, f"bench-{name}", metrics, ("bench/status", b"offline"))
    forwarder = Forwarder(outbox, link, mqtt.max_inflight)
    link.start()
    forwarder.start()
    link.connected.wait(10)
    return outbox, link, forwarder


def _drained(outbox: Outbox) -> None:
    deadline = time.monotonic() + 30
    while outbox.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outbox.backlog == 0, "every message acknowledged and archived"


def _close(outbox: Outbox, link: MqttLink, forwarder: Forwarder) -> None:
    forwarder.stop()
    forwarder.join(5)
    link.stop()
    outbox.close()


def through_outbox(
    port: int, topic: str, data: list[bytes], counter: Counter, batch: int, folder: Path, synchronous: str = "full"
) -> float:
    outbox, link, forwarder = _outbox_parts(port, folder, f"{batch}-{synchronous}-{time.time_ns()}", synchronous)
    counter.expect(len(data))
    start = time.perf_counter()
    for i in range(0, len(data), batch):
        outbox.put_many([(topic, body) for body in data[i : i + batch]])
    counter.wait(120)
    elapsed = time.perf_counter() - start
    _drained(outbox)
    _close(outbox, link, forwarder)
    return len(data) / elapsed


def resend_throughput(port: int, topic: str, data: list[bytes], counter: Counter, folder: Path) -> float:
    """Messages per second from `resend([(1, n)])` until the subscriber has every replay."""
    outbox, link, forwarder = _outbox_parts(port, folder, f"resend-{time.time_ns()}", "full")
    for i in range(0, len(data), 64):
        outbox.put_many([(topic, body) for body in data[i : i + 64]])
    _drained(outbox)
    counter.expect(len(data))
    start = time.perf_counter()
    outcome = outbox.resend([(1, len(data))])
    counter.wait(120)
    elapsed = time.perf_counter() - start
    assert outcome.queued == len(data) and not outcome.not_held
    _drained(outbox)
    _close(outbox, link, forwarder)
    return len(data) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the legs this many times; medians reported")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "m.conf").write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\n"
            "max_queued_messages 0\nuser root\n"
        )
        broker = subprocess.Popen(
            [binary, "-c", str(folder / "m.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.5)
        topic = "edge/v1/bench/dev/sensor_anomaly/result"
        counter = Counter(port, topic)
        data = payloads(args.messages)
        b = args.batch
        names = ("bare_paho_qos1", "bare_paho_qos1_no_window", f"outbox_batch_{b}", f"outbox_normal_batch_{b}",
                 "outbox_batch_1", "outbox_normal_batch_1", "resend_10000")  # fmt: skip
        legs: dict[str, list[float]] = {name: [] for name in names}
        quarter = data[: args.messages // 4]
        try:
            for _ in range(args.rounds):
                legs["bare_paho_qos1"].append(bare_paho(port, topic, data, counter))
                legs["bare_paho_qos1_no_window"].append(bare_paho(port, topic, data, counter, inflight=0))
                legs[f"outbox_batch_{b}"].append(through_outbox(port, topic, data, counter, b, folder))
                legs[f"outbox_normal_batch_{b}"].append(through_outbox(port, topic, data, counter, b, folder, "normal"))
                legs["outbox_batch_1"].append(through_outbox(port, topic, quarter, counter, 1, folder))
                legs["outbox_normal_batch_1"].append(through_outbox(port, topic, quarter, counter, 1, folder, "normal"))
                legs["resend_10000"].append(resend_throughput(port, topic, payloads(10_000), counter, folder))
        finally:
            counter.stop()
            broker.terminate()
    med = {k: sorted(v)[len(v) // 2] for k, v in legs.items()}
    result = {
        "messages": args.messages,
        "payload_bytes": len(data[0]),
        "rounds": args.rounds,
        "per_second": med,
        "ratio_outbox_batched_to_bare": med[f"outbox_batch_{args.batch}"] / med["bare_paho_qos1"],
        "ratio_outbox_single_to_bare": med["outbox_batch_1"] / med["bare_paho_qos1"],
        # Paired per round (the legs of a round ran back to back, so they saw the same machine load).
        "ratio_outbox_batched_to_bare_paired_median": statistics.median(
            o / b for o, b in zip(legs[f"outbox_batch_{args.batch}"], legs["bare_paho_qos1"])
        ),
        "ratio_outbox_batched_to_bare_no_window": med[f"outbox_batch_{args.batch}"] / med["bare_paho_qos1_no_window"],
        "ratio_full_to_normal_batched": med[f"outbox_batch_{args.batch}"] / med[f"outbox_normal_batch_{args.batch}"],
        "ratio_full_to_normal_single": med["outbox_batch_1"] / med["outbox_normal_batch_1"],
        "all": legs,
    }
    for k, v in med.items():
        print(f"{k:<26} {v:>10,.0f} results/s")
    print(f"synchronous=full / normal: batch {args.batch} {result['ratio_full_to_normal_batched']:.2f}, "
          f"batch 1 {result['ratio_full_to_normal_single']:.2f}")  # fmt: skip
    print(
        f"outbox (batch {args.batch}) / bare paho: {result['ratio_outbox_batched_to_bare']:.2f}; "
        f"outbox (batch 1) / bare paho: {result['ratio_outbox_single_to_bare']:.2f}; outbox (batch "
        f"{args.batch}) / bare paho without a window: {result['ratio_outbox_batched_to_bare_no_window']:.2f}"
    )
    print(f"paired per round, median of {args.rounds}: outbox (batch {args.batch}) / bare paho "
          f"{result['ratio_outbox_batched_to_bare_paired_median']:.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
