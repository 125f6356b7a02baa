"""Every Prometheus metric of roi_service, declared once on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REJECT_REASONS: tuple[str, ...] = (
    "topic",
    "json",
    "schema",
    "topic_mismatch",
    "field_range",
    "snapshot",
    "size",
    "not_finite",
    "negative_latency",
    "timestamp",
    "string",
    "database",
    "internal",
)


class ServiceMetrics:
    """Ingest and API counters; tests pass a fresh registry and read samples back."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.received = Counter("roi_ingest_received", "MQTT messages handed to ingest.", registry=reg)
        self.stored = Counter("roi_ingest_stored", "Messages stored (first time seen).", ["kind"], registry=reg)
        self.duplicates = Counter(
            "roi_ingest_duplicates", "Valid messages already stored (replays, QoS 1 redeliveries).", registry=reg
        )
        self.rejected = Counter("roi_ingest_rejected", "Malformed or unknown payloads.", ["reason"], registry=reg)
        self.snapshots = Counter("roi_ingest_snapshots", "JPEG snapshots recorded by reference.", registry=reg)
        self.ignored = Counter(
            "roi_ingest_ignored", "Messages on topics that are not device output (cmd/).", registry=reg
        )
        self.queue_depth = Gauge("roi_ingest_queue_depth", "Messages waiting for the database writer.", registry=reg)
        self.connected = Gauge("roi_ingest_connected", "1 while the MQTT consumer is connected.", registry=reg)
        self.batch_seconds = Histogram(
            "roi_ingest_batch_seconds",
            "Time to validate and commit one batch.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=reg,
        )
        self.batch_size = Histogram(
            "roi_ingest_batch_size",
            "Messages per committed batch.",
            buckets=(1, 10, 50, 100, 500, 1000, 5000),
            registry=reg,
        )
        self.seq_lost = Counter(
            "roi_seq_lost", "Seqs devices reported they no longer hold (a counted, dated loss).", registry=reg
        )
        self.seq_gap_seqs = Gauge("roi_seq_gap_seqs", "Seqs missing in open gaps, all devices.", registry=reg)
        self.seq_gaps = Gauge("roi_seq_gaps", "Open seq gaps, all devices.", registry=reg)
        self.seq_gap_oldest = Gauge(
            "roi_seq_gap_oldest_seconds", "Age of the oldest open seq gap (0: none).", registry=reg
        )
        self.resend_requests = Counter("roi_resend_requests", "cmd/resend commands published.", registry=reg)
        self.resend_seqs = Counter("roi_resend_seqs", "Seqs asked for in cmd/resend commands.", registry=reg)
        self.completeness = Gauge(
            "roi_data_completeness", "Share of produced seqs stored (lost and missing ones count against).",
            registry=reg,
        )  # fmt: skip
        self.resend_lease = Gauge(
            "roi_resend_lease_held", "1 while this replica holds the lease that lets it ask for resends.", registry=reg
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (0 when absent), e.g. sample("roi_ingest_rejected_total")."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def total_rejected(self) -> float:
        return sum(self.sample("roi_ingest_rejected_total", {"reason": r}) for r in REJECT_REASONS)

    def rejected_by_reason(self) -> dict[str, int]:
        """Rejections since start by reason, non-zero ones only: for the dashboard's ingest line."""
        counts = {r: int(self.sample("roi_ingest_rejected_total", {"reason": r})) for r in REJECT_REASONS}
        return {reason: n for reason, n in counts.items() if n}
