"""Strict pydantic models of the YAML config. Loaded once (see config_loader), then passed down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge_agent.messages import check_segment
from edge_agent.tasks.defect.config import DefectTaskConfig
from edge_agent.tasks.sensor.config import SensorAnomalyTaskConfig
from edge_agent.tasks.shelf.config import ShelfTaskConfig

Segment = Annotated[str, Field(min_length=1, max_length=64)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------- device, broker, outbox, http


class DeviceConfig(Strict):
    site: Segment = Field(description="Site id; a topic level (letters, digits, _ and -).")
    id: Segment = Field(description="Device id; a topic level, unique within the site.")

    @field_validator("site", "id")
    @classmethod
    def _segment(cls, value: str) -> str:
        return check_segment(value, "device id/site")


class TlsConfig(Strict):
    ca_file: Path | None = Field(None, description="CA certificate (PEM) that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(None, description="Client private key (PEM).")
    insecure: bool = Field(False, description="Skip host name verification (test benches only).")

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both for mutual TLS, or neither")
        return self


class HomeAssistantConfig(Strict):
    enabled: bool = Field(True, description="Publish retained Home Assistant MQTT discovery configs.")
    prefix: str = Field("homeassistant", description="Discovery prefix configured in Home Assistant.")


class MqttConfig(Strict):
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(None, description="Client id; defaults to edge-{site}-{device}.")
    username: str | None = Field(None, description="User name; env EDGE_AGENT__MQTT__USERNAME.")
    password: SecretStr | None = Field(None, description="Password; prefer EDGE_AGENT__MQTT__PASSWORD_FILE.")
    tls: TlsConfig | None = Field(None, description="TLS settings; omit for plain TCP on a trusted network.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay; doubles up to the max.")
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest reconnect delay (jitter is added).")
    max_inflight: int = Field(
        256, ge=1, le=65535,
        description="QoS 1 messages awaiting PUBACK at once (kept within an MQTT 5 broker's Receive Maximum).",
    )
    stalled_after_s: float = Field(
        60.0, gt=0, description="/healthz is degraded when nothing has been delivered to the broker this long."
    )
    home_assistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self


class OutboxConfig(Strict):
    path: Path = Field(Path("var/outbox.db"), description="SQLite file of the durable outbox.")
    max_rows: int = Field(1_000_000, ge=100, description="Oldest rows are dropped (and counted) past this.")
    max_bytes: int = Field(512 * 1024 * 1024, ge=1024 * 1024, description="Payload bytes kept at most.")
    max_age_s: float = Field(7 * 24 * 3600, gt=0, description="Rows older than this are dropped.")
    synchronous: Literal["normal", "full"] = Field(
        "full", description="full survives power cuts (one fsync per batch, WAL); normal only process crashes."
    )
    max_payload_bytes: int = Field(256 * 1024, ge=1024, description="Larger messages are set aside, not sent.")
    archive_max_age_s: float = Field(
        24 * 3600, ge=0, description="Messages the broker acknowledged are kept this long for cmd/resend (0: none)."
    )
    archive_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="Payload bytes the delivered archive keeps at most (oldest go first)."
    )
    memory_buffer_bytes: int = Field(
        16 * 1024 * 1024, ge=0, description="Kept in memory while the outbox cannot write (disk full); then dropped."
    )


class HttpConfig(Strict):
    enabled: bool = Field(True, description="Serve /metrics and /healthz.")
    host: str = Field("127.0.0.1", description="Listen address; 0.0.0.0 inside containers.")
    port: int = Field(9100, ge=0, le=65535, description="Listen port (0 picks a free one).")
    health_stale_s: float = Field(30.0, gt=0, description="/healthz fails when a pipeline is silent this long.")
    token_file: Path | None = Field(
        None, description="File holding a bearer token /metrics then requires (Prometheus: credentials_file)."
    )


class MetricsConfig(Strict):
    publish_interval_s: float = Field(60.0, gt=0, description="How often the metrics message is published.")
    target_ms: float = Field(100.0, gt=0, description="Latency target the share-under-target is measured against.")


# ---------------------------------------------------------------- runtimes


class OnnxRuntimeConfig(Strict):
    kind: Literal["onnxruntime"] = Field("onnxruntime", description="Runtime kind.")
    intra_op_threads: int = Field(1, ge=1, le=64, description="Threads inside one operator.")
    inter_op_threads: int = Field(1, ge=1, le=64, description="Operators run in parallel.")
    providers: list[Literal["auto", "tensorrt", "cuda", "openvino", "cpu"]] = Field(
        default_factory=lambda: ["auto"],  # type: ignore[arg-type]
        description="Execution providers in order; auto picks installed ones."
    )
    allow_spinning: bool = Field(False, description="Let idle threads spin (faster alone, slower beside others).")
    tensorrt_cache_dir: str | None = Field(None, description="TensorRT engine cache folder (a volume).")
    tensorrt_fp16: bool = Field(True, description="Let TensorRT build fp16 engines.")
    fallback: Literal["none", "cpu"] = Field(
        "none",
        description="When providers name accelerators and none is installed: none refuses to start, cpu runs on CPU.",
    )


class LiteRTConfig(Strict):
    kind: Literal["litert"] = Field(description="Runtime kind.")
    threads: int = Field(1, ge=1, le=64, description="Interpreter threads.")
    xnnpack: bool = Field(True, description="Use the XNNPACK delegate.")


class OpenVINOConfig(Strict):
    kind: Literal["openvino"] = Field(description="Runtime kind.")
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = Field("CPU", description="OpenVINO device (GPU: Intel iGPU).")
    threads: int = Field(1, ge=1, le=64, description="CPU inference threads.")
    cache_dir: str | None = Field(None, description="Compiled-model cache folder (a volume); speeds up GPU starts.")
    precision: Literal["f32", "bf16", "f16", "auto"] = Field(
        "f32",
        description="Inference precision; auto lets OpenVINO pick (bf16 on CPUs with AVX512-BF16/AMX, which changes "
        "outputs against the fp32 the model was measured in).",
    )


RuntimeConfig = Annotated[OnnxRuntimeConfig | LiteRTConfig | OpenVINOConfig, Field(discriminator="kind")]


class ModelRef(Strict):
    path: Path = Field(description="Model folder holding manifest.yaml.")
    variant: str | None = Field(None, description="Variant from the manifest's files; default by runtime.")
    runtime: RuntimeConfig = Field(default_factory=OnnxRuntimeConfig, description="Inference backend.")


# ---------------------------------------------------------------- sources

_RTSP = re.compile(r"^(rtsps?|https?)://[^\s/]+(/\S*)?$")


class BackoffConfig(Strict):
    initial_s: float = Field(0.5, gt=0, description="First retry delay after a source is lost.")
    max_s: float = Field(30.0, gt=0, description="Longest retry delay (jitter is added).")


class CameraSourceConfig(Strict):
    kind: Literal["camera"] = Field(description="OpenCV capture: USB index, file, RTSP URL or GStreamer pipeline.")
    device: int | None = Field(None, ge=0, description="USB/V4L2 camera index.")
    url: str | None = Field(None, description="rtsp://, rtsps:// or http(s):// stream URL.")
    file: Path | None = Field(None, description="Video file.")
    gstreamer: str | None = Field(None, description="GStreamer pipeline ending in appsink.")
    width: int | None = Field(None, ge=1, description="Requested capture width.")
    height: int | None = Field(None, ge=1, description="Requested capture height.")
    fps: float | None = Field(None, gt=0, description="Frames per second to process at most.")
    loop: bool = Field(False, description="Restart a video file at its end.")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)

    @model_validator(mode="after")
    def _exactly_one_input(self) -> CameraSourceConfig:
        given = [name for name in ("device", "url", "file", "gstreamer") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of device, url, file, gstreamer (got {given or 'none'})")
        if self.url is not None and not _RTSP.match(self.url):
            raise ValueError(f"url {self.url!r} is not an rtsp://host/path or http(s):// stream URL")
        if self.gstreamer is not None and "appsink" not in self.gstreamer:
            raise ValueError("a GStreamer pipeline must end in appsink")
        return self


class FolderSourceConfig(Strict):
    kind: Literal["folder"] = Field(description="Images from a folder, in name order.")
    path: Path = Field(description="Folder of images.")
    pattern: str = Field("*", description="Glob of file names (jpg, png, bmp are read).")
    interval_s: float = Field(0.0, ge=0, description="Pause between images (0 = as fast as the model runs).")
    loop: bool = Field(False, description="Start again after the last image.")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)


class CsvSourceConfig(Strict):
    kind: Literal["csv"] = Field(description="Replay of a timestamped multichannel sensor CSV.")
    path: Path = Field(description="CSV file with a header row.")
    timestamp_column: str = Field("timestamp", description="Column of ISO-8601 or epoch-second timestamps.")
    channels: list[str] | None = Field(None, description="Channel columns in model order; the manifest's by default.")
    delimiter: str | None = Field(None, max_length=1, description="Field separator; sniffed when omitted.")
    speed: float = Field(1.0, ge=0, description="Replay speed factor; 0 replays as fast as the pipeline runs.")
    loop: bool = Field(False, description="Start again at the end of the file.")
    window_stride: int | None = Field(None, ge=1, description="Samples between windows; the manifest's by default.")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)


class MqttSensorSourceConfig(Strict):
    kind: Literal["mqtt_sensor"] = Field(description="JSON samples from a sensor gateway over MQTT.")
    topic: str = Field(min_length=1, description="Topic (wildcards allowed) the gateway publishes to.")
    host: str | None = Field(None, description="Broker host; the agent's broker when omitted.")
    port: int = Field(1883, ge=1, le=65535)
    timestamp_field: str = Field("ts", description="JSON field with the sample time (epoch s or ISO-8601).")
    channels: list[str] | None = Field(None, description="JSON fields to read, in model order.")
    window_stride: int | None = Field(None, ge=1, description="Samples between windows.")
    queue_size: int = Field(10_000, ge=1, description="Samples buffered; overflow is counted and logged.")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)


class ModbusRegister(Strict):
    name: str = Field(min_length=1, description="Channel name in model order.")
    address: int = Field(ge=0, le=65535, description="Register address.")
    table: Literal["holding", "input"] = Field("holding", description="Register table.")
    dtype: Literal["int16", "uint16", "int32", "uint32", "float32"] = Field("uint16")
    scale: float = Field(1.0, description="Value = raw x scale + offset.")
    offset: float = Field(0.0)


class ModbusSourceConfig(Strict):
    kind: Literal["modbus"] = Field(description="Modbus TCP polling.")
    host: str = Field(min_length=1, description="Modbus TCP device or gateway.")
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255, description="Unit (slave) id.")
    registers: list[ModbusRegister] = Field(min_length=1)
    poll_interval_s: float = Field(1.0, gt=0, description="Seconds between polls.")
    timeout_s: float = Field(2.0, gt=0)
    window_stride: int | None = Field(None, ge=1)
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)


SourceConfig = Annotated[
    CameraSourceConfig | FolderSourceConfig | CsvSourceConfig | MqttSensorSourceConfig | ModbusSourceConfig,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- tasks and pipelines


class ClassifyTaskConfig(Strict):
    kind: Literal["classify"] = Field(description="Image classification: label and score per frame.")
    top_k: int = Field(3, ge=1, le=20, description="Labels reported per frame.")


TaskConfig = Annotated[
    SensorAnomalyTaskConfig | DefectTaskConfig | ShelfTaskConfig | ClassifyTaskConfig,
    Field(discriminator="kind"),
]


class PipelineConfig(Strict):
    name: Segment = Field(description="Pipeline id, used in metrics and topics.")
    source: SourceConfig
    model: ModelRef
    task: TaskConfig
    sinks: list[Literal["mqtt", "log", "jsonl"]] = Field(
        default_factory=lambda: ["mqtt"],  # type: ignore[arg-type]
        description="Where results go; each sink is isolated from the others. Without mqtt the results take no "
        "seq (they repeat the device's last one), so the cloud sees no gap where they went."
    )
    jsonl_path: Path | None = Field(None, description="File the jsonl sink appends to.")
    queue_size: int = Field(256, ge=1, description="Bounded queue for sensor windows and triggered items.")

    @field_validator("name")
    @classmethod
    def _segment(cls, value: str) -> str:
        return check_segment(value, "pipeline name")

    @model_validator(mode="after")
    def _jsonl_needs_path(self) -> PipelineConfig:
        if "jsonl" in self.sinks and self.jsonl_path is None:
            raise ValueError("the jsonl sink needs jsonl_path")
        return self


class FleetConfig(Strict):
    """Model updates over the air (cmd/model_update): where they are kept and how a new model is judged."""

    store: Path = Field(Path("/data/models"), description="Folder for delivered models and their staging slot.")
    max_download_bytes: int = Field(512 * 1024 * 1024, ge=1024, description="Larger downloads are refused.")
    public_key_file: Path | None = Field(None, description="Fleet Ed25519 public key (PEM); signatures required.")
    allow_plain_http: bool = Field(False, description="Accept http:// sources (test benches; TLS otherwise).")
    probation_s: float = Field(600.0, gt=0, description="How long a new model is watched before it is kept.")
    check_interval_s: float = Field(5.0, gt=0, description="How often probation bounds are checked.")
    min_items: int = Field(20, ge=1, description="Results needed before probation judges a bound.")
    error_rate_factor: float = Field(1.5, gt=1, description="Roll back when errors exceed this times the old rate")
    error_rate_margin: float = Field(0.02, ge=0, description="... and the old rate plus this share of items.")
    event_rate_tolerance: float = Field(0.25, gt=0, description="Roll back when events per item move more.")
    latency_factor: float = Field(
        2.0, gt=1, description="Roll back when p95 is over metrics.target_ms and this times the old p95."
    )
    mlflow_uri: str | None = Field(None, description="MLflow tracking server for models:/name@alias sources.")
    mlflow_token_file: Path | None = Field(None, description="Bearer token for the MLflow server.")


class AgentConfig(Strict):
    """The whole device config (one YAML file)."""

    device: DeviceConfig
    mqtt: MqttConfig | None = Field(None, description="Broker; `edge-agent demo` starts one when omitted.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig, description="Over-the-air model updates.")
    pipelines: list[PipelineConfig] = Field(min_length=1, description="One pipeline per camera or sensor group.")

    @field_validator("pipelines")
    @classmethod
    def _unique_pipeline_names(cls, pipelines: list[PipelineConfig]) -> list[PipelineConfig]:
        names = [p.name for p in pipelines]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pipeline names must be unique; repeated: {', '.join(duplicates)}")
        return pipelines
