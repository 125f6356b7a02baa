"""Every Prometheus metric of the daemon, declared once, on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Fine around 10-100 ms, where the 100 ms target sits, and still sensible for sub-millisecond windows.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.06,
    0.07,
    0.08,
    0.09,
    0.1,
    0.125,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
    2.5,
)
STAGES = ("source_wait", "preprocess", "inference", "decode", "logic", "publish", "total")


class AgentMetrics:
    """The daemon's metrics. Tests pass a fresh CollectorRegistry and read it with get_sample_value."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.agent_info = Info("edge_agent", "Agent version and device identity", registry=r)
        # pipelines
        self.stage_seconds = Histogram(
            "edge_stage_seconds",
            "Time per pipeline stage per batch",
            ["pipeline", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inferences = Counter("edge_inferences_total", "Model invocations", ["pipeline"], registry=r)
        self.items = Counter("edge_items_total", "Items processed (frames, windows, parts)", ["pipeline"], registry=r)
        self.errors = Counter("edge_errors_total", "Failures by pipeline stage", ["pipeline", "stage"], registry=r)
        self.queue_depth = Gauge("edge_queue_depth", "Items waiting for the pipeline", ["pipeline"], registry=r)
        self.dropped = Counter(
            "edge_dropped_total", "Items dropped before inference, by reason", ["pipeline", "reason"], registry=r
        )
        self.input_errors = Counter(
            "edge_input_errors_total",
            "Malformed input records (CSV rows, JSON samples, frames)",
            ["pipeline", "reason"],
            registry=r,
        )
        self.source_up = Gauge("edge_source_up", "1 while the source delivers data", ["pipeline"], registry=r)
        self.source_reconnects = Counter(
            "edge_source_reconnects_total", "Source reconnect attempts", ["pipeline"], registry=r
        )
        self.last_result = Gauge(
            "edge_last_result_timestamp_seconds", "Unix time of the last result", ["pipeline"], registry=r
        )
        self.events = Counter("edge_events_total", "Events raised", ["pipeline", "event"], registry=r)
        self.sink_errors = Counter("edge_sink_errors_total", "Sink failures", ["pipeline", "sink"], registry=r)
        self.model_info = Gauge(
            "edge_model_info",
            "Active model (value 1)",
            ["pipeline", "name", "version", "variant", "sha256", "runtime"],
            registry=r,
        )
        # jobs
        self.anomaly_score = Gauge("edge_anomaly_score", "Last window's anomaly score", ["pipeline"], registry=r)
        self.anomaly_state = Gauge("edge_anomaly_state", "1 while an anomaly is active", ["pipeline"], registry=r)
        self.anomaly_likelihood = Gauge(
            "edge_anomaly_likelihood", "Last window's calibrated anomaly likelihood (0..1)", ["pipeline"], registry=r
        )
        self.defect_items = Counter(
            "edge_defect_items_total",
            "Inspected items by verdict and shift",
            ["pipeline", "shift", "verdict"],
            registry=r,
        )
        self.defect_rate = Gauge(
            "edge_defect_rate", "Share of failed items in the shift", ["pipeline", "shift"], registry=r
        )
        self.zone_count = Gauge("edge_shelf_zone_count", "Smoothed facings per zone", ["pipeline", "zone"], registry=r)
        self.zone_over_capacity = Gauge(
            "edge_shelf_zone_over_capacity",
            "1 while a zone counts more facings than its capacity (the count is not trusted)",
            ["pipeline", "zone"],
            registry=r,
        )
        # outbox and broker link
        self.outbox_backlog = Gauge("edge_outbox_backlog", "Messages stored and not yet acknowledged", registry=r)
        self.outbox_oldest_age = Gauge("edge_outbox_oldest_age_seconds", "Age of the oldest stored message", registry=r)
        self.outbox_sent = Counter("edge_outbox_sent_total", "Messages acknowledged by the broker", registry=r)
        self.outbox_replayed = Counter("edge_outbox_replayed_total", "Messages sent from the backlog", registry=r)
        self.outbox_dropped = Counter(
            "edge_outbox_dropped_total", "Stored messages dropped by a bound (oldest first)", ["reason"], registry=r
        )
        self.outbox_set_aside = Counter(
            "edge_outbox_set_aside_total", "Messages the broker rejected, kept aside", ["reason"], registry=r
        )
        self.outbox_commit_seconds = Histogram(
            "edge_outbox_commit_seconds", "SQLite commit time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.outbox_in_memory = Gauge(
            "edge_outbox_in_memory", "Messages held in memory because the outbox cannot write (disk full)", registry=r
        )
        self.archive_rows = Gauge("edge_outbox_archive_rows", "Delivered messages kept for cmd/resend", registry=r)
        self.archive_bytes = Gauge("edge_outbox_archive_bytes", "Payload bytes of the delivered archive", registry=r)
        self.archive_oldest_seq = Gauge(
            "edge_outbox_archive_oldest_seq", "Oldest seq the delivered archive still holds (0: empty)", registry=r
        )
        self.resend_requests = Counter("edge_resend_requests_total", "cmd/resend commands handled", registry=r)
        self.resend_replayed = Counter(
            "edge_resend_replayed_total", "Archived messages queued again for cmd/resend", registry=r
        )
        self.resend_not_held = Counter(
            "edge_resend_not_held_total", "Requested seqs the device no longer holds (reported as lost)", registry=r
        )
        self.mqtt_link_errors = Counter(
            "edge_mqtt_link_errors_total", "Unexpected errors in the broker link thread (it restarts)", registry=r
        )
        self.mqtt_connected = Gauge("edge_mqtt_connected", "1 while connected to the broker", registry=r)
        self.mqtt_reconnects = Counter("edge_mqtt_connects_total", "Successful broker connections", registry=r)
