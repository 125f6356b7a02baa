"""The payload of cmd/model_update, validated once."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_agent.errors import UpdateError

_REGISTRY_REF = re.compile(r"^models:/[A-Za-z0-9_.-]+(@[A-Za-z0-9_-]+|/[0-9]+)$")


class UpdateRequest(BaseModel):
    """`cmd/model_update` args: a model folder packed as .tar.gz, where to get it and how to check it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Model name (the manifest's name).")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", description="Version (the manifest's version).")
    source: str = Field(description="https:// URL of the archive, or models:/name@alias | models:/name/N (MLflow).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the archive.")
    signature: str | None = Field(None, description="Base64 Ed25519 signature of the archive (fleet key).")
    size: int | None = Field(None, ge=1, description="Archive size in bytes, when known (caps the download).")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value.startswith(("https://", "http://")) or _REGISTRY_REF.match(value):
            return value
        raise ValueError("source must be an https:// URL or a registry reference models:/name@alias")

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def parse_request(args: dict[str, Any]) -> UpdateRequest:
    """The request, or UpdateError naming the first wrong field."""
    try:
        return UpdateRequest.model_validate(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "args"
        raise UpdateError(f"model_update args.{field}: {first['msg']}") from exc
