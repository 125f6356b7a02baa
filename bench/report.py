"""Markdown report and PNG plots, generated from the result JSON alone (every number comes from it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LATENCY_PNG = "latency_{model}.png"
ACCURACY_PNG = "accuracy_vs_latency.png"
_MARK = {True: "PASS", False: "FAIL", None: "n/a"}


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _header(result: dict[str, Any]) -> list[str]:
    fp = result["fingerprint"]
    s = result["settings"]
    pk = ", ".join(f"{k} {v}" for k, v in fp["packages"].items() if v)
    load = f"{_f(fp['load_before'])} before, {_f(fp['load_after'])} after (1/5/15-minute averages)"
    return [
        "# edge-agent benchmark",
        "",
        f"Run {result['created_at']} in {result['duration_s']:.0f} s, mode `{result['mode']}`: `{result['command']}`.",
        "Every figure below is read from the JSON beside this file (generated from it by bench/report.py).",
        "",
        "## Device",
        "",
        f"- CPU: {fp['cpu_model']} ({fp['cores']} usable of {fp['cores_total']} cores; int8 features: "
        f"{', '.join(fp['cpu_int8_flags']) or 'none'}), memory {_f(fp['memory_mb'], 0)} MB"
        + (f", board {fp['board']}" if fp.get("board") else ""),
        f"- OS: {fp['os']} (kernel {fp['kernel']}, {fp['machine']}{', container' if fp['container'] else ''}), "
        f"Python {fp['python']}, edge-agent {fp['edge_agent']} at {(fp.get('git_commit') or '?')[:12]}",
        f"- Packages: {pk}",
        f"- Load average: {load}",
        *_load_warning(fp),
        "",
        f"Settings: up to {s['iterations']} timed items per case after {s['warmup']} warm-up items "
        f"(at most {s['max_seconds']:.0f} s a case), threads {s['threads']}, target {s['target_ms']:.0f} ms, "
        f"{'each case in its own process' if s['isolate'] else 'all cases in one process'}.",
        "",
    ]


def _load_warning(fp: dict[str, Any]) -> list[str]:
    """Say so when other work competed for the cores: tails (p95, p99, max) then include waiting for a core."""
    loads = [x[0] for x in (fp.get("load_before"), fp.get("load_after")) if x]
    if not loads or max(loads) <= fp["cores"]:
        return []
    return [
        f"- **The machine was busy**: a 1-minute load average up to {max(loads):.1f} on {fp['cores']} cores means "
        "other processes were runnable during the run; the tails (p95, p99, max) include time spent waiting for a "
        "core and are worse than on an idle device. Medians and the ratios measured in the same loop are the "
        "more stable figures."
    ]


def _verdicts(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Verdict per job",
        "",
        "Targets: end-to-end p95 < 100 ms and int8 >= 95% of fp32. Judged on every shipped int8 file at 1 thread "
        "(the worst counts). Our goals are shown beside them.",
        "",
        "| model (job) | verdict | e2e p95 (judged on) | < target | goal | < goal | int8/fp32 (judged on) "
        "| >= 95% | goal | >= goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in result["models"]:
        v = m.get("verdict")
        if v is None:
            lines.append(f"| {m['name']} | ERROR: {m.get('error')} | | | | | | | | |")
            continue
        lat, acc = v["latency"], v["accuracy"]
        lat_cell = f"{_f(lat['measured_p95_ms'])} ms ({lat['judged_on'] or lat.get('reason')})"
        acc_cell = f"{_pct(acc['ratio'])} ({acc['judged_on'] or acc.get('reason')})"
        lines.append(
            f"| {m['name']} ({v['task']}) | **{v['state'].upper()}** | {lat_cell} | {_MARK[lat['pass']]} | "
            f"< {_f(lat['goal_ms'], 0)} ms | {_MARK[lat['goal_met']]} | {acc_cell} | {_MARK[acc['pass']]} | "
            f">= {_pct(acc['goal_ratio'])} | {_MARK[acc['goal_met']]} |"
        )
    return [*lines, ""]


def _latency_table(model: dict[str, Any]) -> list[str]:
    lines = [
        "| file | runtime | thr | bare p50 | bare p95 | e2e p50 | e2e p95 | e2e p99 | e2e max | < 100 ms "
        "| e2e / bare p50 | items/s | peak RSS MB | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in model["cases"]:
        if c.get("status") != "ok":
            lines.append(f"| {c['variant']} | {c['runtime_kind']} | {c['threads']} | {c.get('status')}: "
                         f"{_short(c.get('error'))} | | | | | | | | | | |")  # fmt: skip
            continue
        b, e = c["bare"], c["e2e"]
        errs = f" ({c['pipeline_errors']} failed)" if c.get("pipeline_errors") else ""
        lines.append(
            f"| {c['variant']} | {c['runtime_kind']} | {c['threads']} | {_f(b['p50_ms'])} | {_f(b['p95_ms'])} | "
            f"{_f(e['p50_ms'])} | {_f(e['p95_ms'])} | {_f(e['p99_ms'])} | {_f(e['max_ms'])} | "
            f"{_pct(e['under_target_ratio'])} | {_f(c['overhead_ratio_p50'])}x | {_f(e['throughput_per_s'], 1)} | "
            f"{_f(c['memory']['peak_rss_mb'], 0)} | {c['iterations']}{errs} |"
        )
    return lines


def _stage_table(model: dict[str, Any]) -> list[str]:
    ok = [c for c in model["cases"] if c.get("status") == "ok"]
    if not ok:
        return []
    stages = list(ok[0]["stages"])
    lines = ["", "Stage p50 in ms (source = JPEG decode or windowing; publish = outbox commit):", "",
             "| file | thr | " + " | ".join(stages) + " |", "|---|---|" + "---|" * len(stages)]  # fmt: skip
    for c in ok:
        cells = " | ".join(_f(c["stages"][s]["p50_ms"], 3) for s in stages)
        lines.append(f"| {c['variant']} | {c['threads']} | {cells} |")
    return lines


def _accuracy_table(model: dict[str, Any]) -> list[str]:
    acc = model.get("accuracy")
    if not acc:
        return ["", "Accuracy: not measured in this run."]
    if acc.get("status") != "ok":
        return ["", f"Accuracy: **not available** ({_short(acc.get('error'), 300)})."]
    lines = ["", f"Accuracy on {acc['dataset']}, metric `{acc['metric']}`, reference `{acc.get('reference')}`"
             + (f" ({acc['note']})" if acc.get("note") else "") + ":", "",
             "| file | precision | value | ratio to fp32 |", "|---|---|---|---|"]  # fmt: skip
    for name, v in acc["variants"].items():
        lines.append(f"| {name} | {v['precision']} | {_f(v['value'], 4)} | {_pct(v['ratio_to_fp32'])} |")
    return lines


def _short(text: Any, limit: int = 160) -> str:
    s = " ".join(str(text or "").split()).replace("|", "/")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _model_section(model: dict[str, Any], plots: list[str]) -> list[str]:
    lines = [f"## {model['name']} ({model.get('task')}, version {model.get('version')})", ""]
    if model.get("status") != "ok":
        lines += [f"**Broken or missing:** {_short(model.get('error'), 400)}", ""]
    if model["files"]:
        files = ", ".join(f"{k} `{v['sha256'][:12]}`{'' if v['sha256_ok'] else ' (HASH MISMATCH)'}"
                          for k, v in model["files"].items())  # fmt: skip
        lines += [f"Files (sha256): {files}." + (f" Not shipped: {', '.join(model['not_shipped'])}."
                                                  if model["not_shipped"] else ""), ""]  # fmt: skip
    workloads = {c.get("workload") for c in model["cases"] if c.get("workload")}
    if workloads:
        lines += [f"Input: {', '.join(sorted(workloads))}.", ""]
    if model["cases"]:
        lines += _latency_table(model) + _stage_table(model)
    lines += _accuracy_table(model)
    png = LATENCY_PNG.format(model=model["name"])
    if png in plots:
        lines += ["", f"![end-to-end latency of {model['name']}]({png})"]
    return [*lines, ""]


def _peers(result: dict[str, Any]) -> list[str]:
    peers = result.get("peers") or {}
    lines = ["## Peer comparison (optional, separate from the verdicts)", ""]
    if peers.get("status") != "ok":
        return [*lines, f"Skipped: {peers.get('note') or peers.get('status') or 'not run'}.", ""]
    lines += [peers.get("note") or "", "", "| model | file | peer p50 ms | peer p95 ms | ours e2e p50 | ours e2e p95 |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in peers.get("results", []):
        lines.append(f"| {r['model']} | {r['variant']} | {_f(r.get('p50_ms'))} | {_f(r.get('p95_ms'))} | "
                     f"{_f(r.get('ours_p50_ms'))} | {_f(r.get('ours_p95_ms'))} |")  # fmt: skip
    return [*lines, ""]


def markdown(result: dict[str, Any], plots: list[str]) -> str:
    lines = _header(result) + _verdicts(result)
    lines += [
        "Columns: *bare* is `runtime.run` alone on the same preprocessed input, timed alternately with the "
        "pipeline; *e2e* is source -> preprocess -> model -> decode -> logic -> outbox commit; times in ms.",
        "",
    ]
    for model in result["models"]:
        lines += _model_section(model, plots)
    if ACCURACY_PNG in plots:
        lines += ["## Accuracy vs latency per file", "", f"![accuracy vs latency]({ACCURACY_PNG})", ""]
    lines += _peers(result)
    if result.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    return "\n".join(lines)


def write_plots(result: dict[str, Any], out: Path) -> list[str]:
    """PNG files written into `out` (names relative to it); none when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'edge-agent[bench]'): no plots")
        return []
    from bench.plots import accuracy_vs_latency, latency_distribution

    written = []
    for model in result["models"]:
        name = LATENCY_PNG.format(model=model["name"])
        if latency_distribution(model, result["settings"]["target_ms"], out / name):
            written.append(name)
    if accuracy_vs_latency(result["models"], result["settings"]["target_ms"], out / ACCURACY_PNG):
        written.append(ACCURACY_PNG)
    return written
