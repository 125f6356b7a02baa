"""Service settings (strict pydantic), built once by the CLI from flags, env and secret files, then passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(_Strict):
    """How the ingest consumer reaches the broker."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="CA bundle; setting it turns TLS on.")
    client_id: str = Field("roi-service", description="Stable id so a persistent session survives restarts.")
    shared_group: str | None = Field(
        None, description="Subscribe through $share/<group>/ so several replicas split the device traffic."
    )
    topic_filter: str = "edge/v1/+/+/#"
    keepalive_s: int = Field(30, ge=5)

    def subscription(self) -> str:
        if self.shared_group:
            return f"$share/{self.shared_group}/{self.topic_filter}"
        return self.topic_filter


class ResendSettings(_Strict):
    """How the service asks devices for the seqs the broker dropped (cmd/resend)."""

    enabled: bool = Field(True, description="Track seq gaps and ask devices to resend them.")
    scan_interval_s: float = Field(1.0, gt=0, description="How often new messages are scanned for gaps.")
    grace_s: float = Field(3.0, ge=0, description="A gap younger than this is not asked for (reordering).")
    interval_s: float = Field(20.0, gt=0, description="Least time between two asks for the same gap.")
    max_seqs: int = Field(50_000, ge=1, description="Most seqs one cmd/resend asks for.")
    lease_s: float = Field(15.0, gt=0, description="Only the replica holding this lease asks; it renews it.")


class IngestSettings(_Strict):
    batch_size: int = Field(1000, ge=1, description="Most messages per database transaction.")
    max_wait_s: float = Field(0.05, gt=0, description="Longest a message waits for its batch to fill.")
    queue_size: int = Field(50_000, ge=1, description="Deliveries buffered before the MQTT thread waits (QoS 1 holds).")
    max_past_s: float = Field(
        30 * 86400, gt=0, description="Timestamps older than this (service clock) are refused; ROI_INGEST_MAX_PAST_S."
    )
    max_future_s: float = Field(
        3600, gt=0, description="Timestamps this far ahead are refused; ROI_INGEST_MAX_FUTURE_S."
    )
    resend: ResendSettings = Field(default_factory=ResendSettings)


class ServiceSettings(_Strict):
    database_url: str = "sqlite:///var/roi.db"
    token: SecretStr | None = Field(None, description="Bearer token for the API and the dashboard.")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    default_period_days: float = Field(7.0, gt=0)
