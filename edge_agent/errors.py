"""The one exception tree of edge_agent; third-party errors are translated into it at the boundary.

    EdgeAgentError                  every error this package raises on purpose
    ├── ConfigError                 the YAML config is invalid (carries one ConfigIssue per problem)
    ├── ModelError                  a model folder, manifest or file is missing, corrupt or mismatched
    │   └── ManifestError           manifest.yaml itself is invalid
    ├── RuntimeUnavailableError     an optional inference backend is not installed (names the install command)
    ├── InferenceError              the backend failed while running a model
    ├── SourceError                 a camera, file or sensor source cannot deliver data
    │   └── SourceClosed            the source ended for good (end of a file replay)
    ├── DataError                   input data (a CSV row, a JSON sample, an image) is malformed
    ├── OutboxError                 the durable outbox cannot store or send
    ├── BrokerLinkError             the broker link cannot be set up (TLS files missing or unreadable)
    └── UpdateError                 a model update was refused or failed (download, hash, signature, self-test)

Messages name the file, the field and the fix, and never contain a secret.
"""

from __future__ import annotations

from dataclasses import dataclass


class EdgeAgentError(Exception):
    """Base of every error edge_agent raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file: where it is, what is wrong, how to fix it."""

    path: str
    message: str
    line: int | None = None
    hint: str | None = None

    def format(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line is not None else filename
        text = f"{where}: {self.path or '<root>'}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(EdgeAgentError):
    """The config is invalid; `issues` lists every problem found, not just the first."""

    def __init__(self, filename: str, issues: list[ConfigIssue]) -> None:
        self.filename = filename
        self.issues = issues
        super().__init__("\n".join(issue.format(filename) for issue in issues))


class ModelError(EdgeAgentError):
    """A model folder, manifest or model file is missing, corrupt or does not match its manifest."""


class ManifestError(ModelError):
    """manifest.yaml is invalid."""


class RuntimeUnavailableError(EdgeAgentError):
    """An optional inference backend is not installed."""


class InferenceError(EdgeAgentError):
    """The inference backend failed while running a model."""


class SourceError(EdgeAgentError):
    """A source cannot deliver data right now (it will be retried)."""


class SourceClosed(SourceError):
    """The source has ended for good, such as the end of a file replayed once."""


class DataError(EdgeAgentError):
    """Input data is malformed: the message names the file or topic, the record and the field."""


class OutboxError(EdgeAgentError):
    """The durable outbox cannot store or send messages."""


class BrokerLinkError(EdgeAgentError):
    """The broker link cannot be set up: the message names the mqtt.tls field, the file and the fix."""


class UpdateError(EdgeAgentError):
    """A model update was refused or failed; the running model stays (the message says which step and why)."""
