"""`edge-agent check`: the config's structure, then what it points at (models, hashes, files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.config_loader import Loc, load_config, read_yaml
from edge_agent.errors import ConfigError, ConfigIssue, EdgeAgentError
from edge_agent.preflight import model_issues, outbox_issues, port_issues, tls_issues
from edge_agent.runtime.manifest import load_manifest, verify_file
from edge_agent.runtime.registry import BACKENDS, pick_variant


def check_config(path: Path, environ: dict[str, str] | None = None, load_models: bool = True) -> AgentConfig:
    """Validate the config and everything it references; raise ConfigError with every problem found.

    What `run` would refuse is refused here: the outbox, TLS files and the HTTP port are checked as `run`
    uses them, and (with `load_models`; `run` loads them itself) every model is loaded and run once."""
    config = load_config(path, environ)
    _, lines = read_yaml(path)
    issues: list[ConfigIssue] = []
    for index, pipeline in enumerate(config.pipelines):
        issues += _check_model(index, pipeline.model, lines)
        issues += _check_source(index, pipeline.source, lines)
    issues += outbox_issues(config.outbox) + tls_issues(config) + port_issues(config)
    if load_models and not issues:
        issues += model_issues(config)
    if issues:
        raise ConfigError(str(path), [_with_line(issue, lines) for issue in issues])
    return config


def _with_line(issue: ConfigIssue, lines: dict[Loc, int]) -> ConfigIssue:
    if issue.line is not None:
        return issue
    loc: Loc = tuple(int(p) if p.isdigit() else p for p in issue.path.split("."))
    return ConfigIssue(issue.path, issue.message, _line(lines, loc), issue.hint)


def _line(lines: dict[Loc, int], loc: Loc) -> int | None:
    return next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)


def _check_model(index: int, ref: Any, lines: dict[Loc, int]) -> list[ConfigIssue]:
    loc: Loc = ("pipelines", index, "model", "path")
    try:
        manifest = load_manifest(ref.path)
        variant = pick_variant(manifest, ref.variant, ref.runtime.kind)
        _, entry, _ = verify_file(ref.path, manifest, variant)
        if manifest.decoder == "patch_knn":  # a defect model's memory bank sits beside its file: run loads it too
            from edge_agent.tasks.defect.patches import verify_bank

            verify_bank(ref.path, manifest, variant)
    except EdgeAgentError as exc:
        hint = "run `edge-agent models list` to see the installed models"
        return [ConfigIssue(".".join(map(str, loc)), str(exc), _line(lines, loc), hint)]
    if ref.runtime.kind == "onnxruntime":
        issues = _check_providers(index, ref.runtime, lines)
        if issues:
            return issues
    expected = BACKENDS[ref.runtime.kind][2]
    if entry.format != expected:
        loc = ("pipelines", index, "model", "variant")
        return [
            ConfigIssue(
                ".".join(map(str, loc)),
                f"variant {variant!r} is a {entry.format} file; runtime {ref.runtime.kind!r} reads {expected}",
                _line(lines, loc),
                f"choose one of: {', '.join(k for k, f in manifest.files.items() if f.format == expected)}",
            )
        ]
    return []


def _check_providers(index: int, runtime: Any, lines: dict[Loc, int]) -> list[ConfigIssue]:
    from edge_agent.runtime.onnx import available_providers, require_accelerator

    loc: Loc = ("pipelines", index, "model", "runtime", "providers")
    try:
        require_accelerator(runtime, available_providers())
    except EdgeAgentError as exc:
        message, _, hint = str(exc).partition(": run ")
        return [ConfigIssue(".".join(map(str, loc)), message, _line(lines, loc), f"run {hint}")]
    return []


def _check_source(index: int, source: Any, lines: dict[Loc, int]) -> list[ConfigIssue]:
    for field, must_be_dir in (("path", source.kind == "folder"), ("file", False)):
        value = getattr(source, field, None)
        if not isinstance(value, Path):
            continue
        ok = value.is_dir() if must_be_dir else value.is_file()
        if not ok:
            loc: Loc = ("pipelines", index, "source", field)
            what = "folder" if must_be_dir else "file"
            return [
                ConfigIssue(
                    ".".join(map(str, loc)),
                    f"{what} {value} not found",
                    _line(lines, loc),
                    "paths are relative to the config file's folder",
                )
            ]
    return []
