"""MODEL_CARD.md of the shipped sensor anomaly model, written from measured figures only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.runtime.manifest import Manifest


def _delay(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _variant_table(figures: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "| variant | F1 | precision | recall | FAR % | MAR % | false alarms/day | mean delay s | detected |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, r in figures.items():
        rows.append(
            f"| {variant} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['far_pct']:.2f} | "
            f"{r['mar_pct']:.2f} | {r['false_alarms_per_day']:.1f} | {_delay(r['mean_delay_s'])} | "
            f"{r['detected']}/{r['anomalies']} |"
        )
    ratios = []
    for key, r in figures.items():
        variant, _, decide_on = key.partition(" ")
        fp32 = figures.get(" ".join(filter(None, ("onnx-fp32", decide_on))), {}).get("f1")
        if fp32 and variant != "onnx-fp32":
            ratios.append(f"{key} {r['f1'] / fp32:.4f}")
    if ratios:
        rows += ["", f"int8 / fp32 F1: {', '.join(ratios)}"]
    return rows


def _skab(metrics: dict[str, Any]) -> list[str]:
    if "skab" not in metrics:
        return ["Not measured in this build (run the build with `--skab /path/to/skab`)."]
    skab = metrics["skab"]
    results = skab["results"]
    tail = {v: r["after_training_rows"] for v, r in results.items()}
    files = next(iter(results.values()))["files"]
    cfg = skab["settings"]
    return [
        f"All {files} labelled SKAB runs (valve1, valve2, other), SKAB's outlier-leaderboard protocol as in its "
        "notebooks: for each file a model is fitted on its first 400 rows (normal operation) with this model's "
        "fit code and default settings, the whole file is scored, TP/FP/FN are counted point-wise over all files "
        "together, F1 = TP / (TP + (FP + FN) / 2). A point is predicted abnormal when the device's debounced "
        "state is anomalous for the window ending at it, with the task's defaults: `score` rows decide on the raw "
        "score (min_windows 5, clear_windows 10, clear_ratio 0.8, as before), `likelihood` rows on the calibrated "
        "likelihood (threshold 0.999; one window span abnormal before a start, two calm before an end); the "
        f"first {cfg['window'] - 1} points of a file have no window and count as normal. Leaderboard best: "
        "Conv-AE F1 0.78, FAR 13.55%, MAR 28.02%. "
        "False alarms/day: predicted anomalies overlapping no labelled one, per day of labelled-normal time; "
        "delay: first predicted point "
        "inside a labelled anomaly minus its start.",
        "",
        *_variant_table({v: r["all"] for v, r in results.items()}),
        "",
        "Scored only after the 400 training rows of each file:",
        "",
        *_variant_table(tail),
        "",
        f"Reproduce: `{skab['command']}` (add `--fit-python` for a python with onnx + tensorflow-cpu if this one "
        "lacks them). SKAB is GPL-3.0 data and is read in place, never copied.",
        "",
        f"The raw-score settings (window {cfg['window']}, rank {cfg['latent']}, threshold = {cfg['quantile']} "
        f"quantile x {cfg['margin']}, min_windows 5, clear_windows 10) were chosen on these same files, as the "
        "leaderboard's notebooks did, so they are not a held-out estimate: "
        "over the 27 neighbouring settings (window 20/30/45, rank 8/12/16, margin 1.25/1.4/1.6; fp32, min_windows 3) "
        "F1 ranged 0.748-0.803. The likelihood's debounce (one window span / two) was picked after trying four "
        "variants on SKAB (counts 5/10, clear 30 windows, min 10 windows, spans), so it is not held out either. "
        "A two-layer int8 bottleneck lost 0.02 F1 to fp32 (saturation on drifted inputs); "
        "the folded layer and wide calibration ranges shipped here keep int8 within 1% of fp32. The int8 ONNX "
        "weights are 7-bit: on x86 CPUs without VNNI (AVX2 only) 8-bit weights saturated the 16-bit sums of int8 "
        "products (a one-channel model put 50% of its normal windows over the 0.99 likelihood, fp32 2.2%); with 7 "
        "bits 1.9%, and SKAB F1 0.804 against fp32 0.805 on such a CPU. The MLP "
        "autoencoder option (`--architecture mlp --latent 12`: 64-12-64 with ReLU, torch) measured F1 0.745 "
        "(fp32) and 0.748 (int8 ONNX) with the same command and protocol, and the Conv-AE of the leaderboard 0.78: "
        "400 normal rows per file are too few for the nonlinear models, which is why the linear one ships.",
        "",
        "Measured during development with the same protocol (int8 ONNX; 2 cores shared with other jobs):",
        "",
        "- Before the likelihood (commit 3c94337, raw score only): F1 0.806, 14.2 false alarms/day, delay 38.4 s. "
        "The raw rows above differ (21.3/day) because windows across timestamp gaps are now left out of the fit "
        "and skipped at run time (SKAB has gaps of 54-247 s); with the gap handling off the raw row is 0.806 / 14.2.",
        "- Likelihood with the raw score's debounce (5/10 windows): F1 0.811, 78 false alarms/day (22 short ones); "
        "the one/two-window-span debounce above brings that to 7.1.",
        "- `--level-test on` (window levels, the univariate default) on all 8 channels: F1 0.771, 14.2/day.",
        "- One channel replayed alone (`--channel NAME`, likelihood, fit's defaults for one channel, which now add "
        "the recent-change test and the fast start; in brackets with `--recent-test off`): Volume Flow RateRMS F1 "
        "0.778 (0.785), 35.5 (21.3) false alarms/day, delay 31.2 s (38.7); Accelerometer1RMS 0.440 (0.400), 35.5 "
        "(24.9)/day, 67.9 s (59.8); Temperature 0.438 (0.389), 32.0 (10.7)/day, 91.9 s (132.5); Pressure 0.162 "
        "(0.000), 24.9 (3.6)/day, 82.4 s (none found). Before this work (window model and level test only, no "
        "fast start): 0.770, 0.374, 0.384, 0.000. Replayed over all 34 runs, only flow is within 10% of the "
        "multichannel F1: most runs' faults do not show in the other channels' values at all.",
        "- One channel alone on the channels that carry the fault (`python -m bench.sensor_skab_channels --data "
        "SKAB`, the measure the one-channel goal is stated on): a channel carries a run's fault when its values "
        "alone tell that run's "
        "labelled anomaly samples from its normal ones (folded rank AUROC of the value or of its distance from the "
        "normal median >= 0.9, decided from the labels before any model runs). 41 (run, channel) pairs in 30 runs "
        "(flow 25, each accelerometer 5, temperature 4, thermocouple 2; current, voltage and pressure never reach "
        "0.6). Pooled one-channel F1 0.824 (int8 ONNX; fp32 0.824), 17.8 false alarms/day, delay 22.4 s, against "
        "the multichannel model on the same 30 runs 0.819, 8.1/day, 43.6 s: ratio 1.006, goal (>= 0.90) met. "
        "Per channel: flow 0.818, accelerometers 0.817 / 0.839, temperature 0.811, thermocouple 0.884. With a "
        "looser criterion the channels that carry the fault only faintly join and the ratio falls: >= 0.8, 61 "
        "pairs, 0.773 against 0.805 (0.960); >= 0.7, 96 pairs, 0.695 (0.863, not met). One channel alone raises "
        "2-4x the false alarms per day of the multichannel model.",
        "- `--recent-test on` with all 8 channels (before the fast start): F1 0.763, 39.1 false alarms/day, delay "
        "29.8 s (off, the multichannel default, then: 0.805, 7.1, 45.6).",
        "- The one-channel fast start on these 8 channels too (`fast_likelihood: 0.999999`): int8 likelihood F1 "
        "0.815, 10.7 false alarms/day, delay 34.0 s, 32/34 detected. Not the multichannel default: on the 52 "
        "synthetic channels below it nearly tripled the false alarms (0.71 -> 1.98/day on the normal stream, "
        "0.30 -> 2.13 with one-channel offsets), the extreme tail of many channels being heavier than the "
        "calibration extrapolates.",
        "- Adaptation (`--adapt 10m`, likelihood): F1 0.792, 21.3 false alarms/day, delay 43.1 s (without: "
        "0.805, 7.1, 45.6). On SKAB it learns from the training rows themselves (the protocol scores them), whose "
        "errors are in-sample and small, so it makes the detector more sensitive: a loss here, not a gain.",
    ]


def _synthetic(metrics: dict[str, Any]) -> list[str]:
    figures = metrics["synthetic_24h"]
    rows = [
        "24 h of held-out synthetic data (`edge_agent.tasks.sensor.synth`, seed 3, 48 faults), replayed through "
        "the device's task at stride 1:",
        "",
        *_variant_table(figures),
        "",
        "Per fault kind (onnx-int8): ",
        "",
        "| fault | detected | mean delay s |",
        "|---|---|---|",
    ]
    for kind, entry in figures["onnx-int8"]["per_fault"].items():
        rows.append(f"| {kind} | {entry['detected']}/{entry['faults']} | {_delay(entry['mean_delay_s'])} |")
    return rows


def _throughput(metrics: dict[str, Any]) -> list[str]:
    if "throughput" not in metrics:
        return [
            "Not measured in this build (`python bench/sensor_throughput.py --json out.json`, then `--throughput`)."
        ]
    t = metrics["throughput"]
    rows = [
        f"One core, {t.get('device', 'this machine')}, shared machine with load average {t.get('load_average_1m')} "
        "during the run (figures are medians over passes; best pass in brackets). Batched: preprocess + model + "
        "decode per batch, then also the per-window task logic (debounce, result message). Unbatched: all four "
        "stages for one window at a time.",
        "",
        "| variant | batched windows/s (batch) | batched + logic windows/s | unbatched p50 ms | unbatched p95 ms |",
        "|---|---|---|---|---|",
    ]
    for variant, r in t["variants"].items():
        rows.append(
            f"| {variant} | {r['batched_windows_per_s']:,.0f} [{r['batched_windows_per_s_best']:,.0f}] "
            f"({r['batch']}) | {r['batched_with_logic_windows_per_s']:,.0f} "
            f"[{r['batched_with_logic_windows_per_s_best']:,.0f}] | {r['unbatched_p50_ms']:.3f} | "
            f"{r['unbatched_p95_ms']:.3f} |"
        )
    rows += ["", f"Reproduce: `{t['command']}`", "", *THROUGHPUT_RECENT]
    return rows


# Measured once (not by the build): models fitted on the build's 8 h of normal data with the recent-change test.
THROUGHPUT_RECENT = [
    "With the recent-change test on (int8 ONNX, same command with `--model`, load average 3.4 and 4.9): models "
    "fitted on the 8 h of normal data above, `fit sensor --normal normal.csv --out M1 --channels temperature` "
    "(one channel, window 20, the test on by default) and `--out M5 --window 60 --recent-test on` (this "
    "model's shape with the test):",
    "",
    "| model | batched windows/s | batched + logic windows/s | unbatched p50 ms | unbatched p95 ms |",
    "|---|---|---|---|---|",
    "| 1 channel x 20, recent-change test and fast start (defaults) | 88,394 [100,506] | 46,334 [50,211] | 0.705 | "
    "4.044 |",
    "| 5 channels x 60, recent-change test | 54,894 [66,832] | 26,616 [27,530] | 0.435 | 3.110 |",
    "",
    "The test's cost per batch is one cumulative sum and one sliding maximum over the batch's samples "
    "(a median/MAD per window, its first form, ran at 6,000 windows/s on the five-channel model).",
]


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"| {name} | {r['detected']}/{r['anomalies']} | {r['f1']:.3f} | {r['false_alarms_per_day']:.2f} | "
        f"{_delay(r['mean_delay_s'])} |"
    )


def _streams(metrics: dict[str, Any]) -> list[str]:
    if "streams" not in metrics:
        return ["Not measured in this build (`python -m bench.sensor_synthetic --json s.json`, then `--streams`)."]
    streams = metrics["streams"]
    rows = [
        "`python -m bench.sensor_synthetic` (its docstring has the streams): each stream fitted with `fit sensor`'s "
        "defaults on its first 15%, scored after it, int8 ONNX; F1 point-wise, delay in seconds. The univariate "
        "likelihood rows include the recent-change test and the fast start (fit's defaults for one channel). "
        "With `--recent-test off` (fast start kept): level shift 3/3, F1 0.665, 0.00/day, 8100 s; spikes 3/3, "
        "0.875, 300 s; drift 2/3, 0.473, 14100 s; variance 3/3, 0.780, 1400 s; hourly level shift 3/3, 24000 s; "
        "5% lost 2/3, 0.617, 5550 s; no false alarms on any univariate stream. Before this work (neither): level "
        "shift 9900 s, spikes 5700 s, drift 17400 s, variance 6600 s, 5% lost not measured. So the recent-change "
        "test brings level shifts forward (8100 -> 300 s) and finds the shift after lost samples, at about one "
        "false alarm in 17 days on four of the streams and a lower point-wise F1 (its alarms end sooner). The 52 "
        "channel rows have neither (multichannel defaults). The rows now also include the one-channel adaptation "
        "(3 days, fit's default since the NAB-like streams below); before it the likelihood rows were: level shift "
        "F1 0.718, spikes 0.758, drift 0.328 (13350 s), variance 0.742, hourly level shift 0.325 (21600 s), hourly "
        "spikes 0.387, with the same detections and the same or fewer false alarms/day. Against a multichannel "
        "model (`--companions 7`, the default: the same faulty stream with 7 normal channels beside it, fitted "
        "with the defaults for 8 channels, likelihood): level shift F1 0.732 alone / 0.335 with companions (1/3 "
        "found), spikes 0.758 / 0.000 (0/3), drift 0.333 / 0.326, variance 0.766 / 0.311, hourly level shift "
        "0.300 / 0.271, hourly spikes 0.362 / 0.000, 5% lost 0.712 / 0.321: one channel alone is never below "
        "the multichannel model. The other way round this shows a limit of the multichannel defaults: a level "
        "shift or short spikes in one channel of 8 is often reconstructed or debounced away (the level test and "
        "the fast start are one-channel defaults because on SKAB's 8 channels they raised false alarms, see "
        "above); the 52-channel stream with one-channel offsets finds 3/3.",
        "",
        "| stream, decided on | faults detected | F1 | false alarms/day | mean delay s |",
        "|---|---|---|---|---|",
    ]
    for name, by_mode in streams.items():
        if name == "drift":
            continue
        rows += [_row(f"{name}, {mode}", r) for mode, r in by_mode.items()]
    rows += ["", "Adaptation on the univariate stream (likelihood):", ""]
    rows += ["| stream | faults detected | F1 | false alarms/day | mean delay s |", "|---|---|---|---|---|"]
    rows += [_row(name, r) for name, r in streams.get("drift", {}).items()]
    return rows


def _nablike(metrics: dict[str, Any]) -> list[str]:
    """The one-channel defaults as chosen: NAB standard-profile scores per variant over seeds (bench.sensor_nablike)."""
    if "nablike" not in metrics:
        return ["Not measured in this build (`python -m bench.sensor_nablike --json n.json`, then `--nablike`)."]
    table = metrics["nablike"]
    seeds = len(next(iter(table.values()))["scores"])
    rows = [
        "`python -m bench.sensor_nablike --seeds 1,2,3,4,5,6,7,8 --series 20` (its docstring has the generator and "
        f"the scoring): {seeds} seeded corpora of 20 one-channel series each (random-walk levels, daily and weekly "
        "cycles with changing amplitude, heteroscedastic load with bursts, set-point steps, a quantised sensor; "
        "5-minute and hourly, 3,000-20,000 points, half with a slow benign drift) with spikes, level shifts, "
        "variance changes, cycle breaks and flat lines; each fitted with the real `fit sensor` defaults on its "
        "first 15% and replayed through the task (int8 ONNX). Scored with our reimplementation of NAB's standard "
        "profile (anomaly_start onsets only; 100 = every window caught at its start, 0 = never alarming). Our "
        "generator, not NAB: the earlier measurement on a real NAB-like benchmark gave these defaults before "
        "adaptation about 45 (here about 51). Variants change one thing against today's defaults (adapt 3d, "
        "recent-change test, fast start, one window span before a start).",
        "",
        "| variant | mean | spread (max-min over seeds) | per seed | windows caught | false onsets |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in table.items():
        per_seed = " ".join(f"{v:.1f}" for v in r["scores"].values())
        rows.append(
            f"| {name} | {r['mean']:.1f} | {r['spread']:.1f} | {per_seed} | {r['caught']}/{r['windows']} | "
            f"{r['false_onsets']} |"
        )
    return [*rows, "", *NABLIKE_NOTES]


NABLIKE_NOTES = [
    "How the default was chosen (on seeds 1-4 first, then checked on held-out seeds 5-8; the table has all 8): "
    "adaptation was the change that won across corpora. Against no adaptation the 3-day time constant won 7 of "
    "8 corpora (+10.8, +4.1, +4.5, +5.7, +15.2, +7.0, -5.2, +1.9; mean +5.5) with 27% fewer false onsets; 6 h, 1 d "
    "and 7 d scored within a point or two of it (1 d: 55.0 over the 8 seeds) and 3 d is the slowest of the good "
    "rates, so the least able to learn a slow fault. By family the gain is the random-walk levels (25.8 -> 51.0: "
    "streams that wander out of their first 15%); elsewhere it is within noise, and on set-point steps slightly "
    "lower (34.5 -> 33.0; on seeds 5-8 44.8 -> 36.4: a learned level makes a return to an old set point look "
    "new). With adaptation on, the recent-change test (-9.5 without) and the fast start (-3.8 without) are "
    "kept; one more window span before a start (`min_windows 40`) saved false onsets but missed more windows "
    "(-1.4). Measured before adaptation, without changing anything: a 0.9999 threshold -1.9 and a 1-day "
    "clear_duration -5.3 (seeds 1-4). A generator we wrote is easy to overfit: only the setting that won across "
    "families and seeds was changed, nothing else was tuned on it.",
]


# Measured once by hand (bench.sensor_nablike, bench.sensor_skab, bench.sensor_throughput), not by the build.
SPECTRAL_SECTION = [
    "",
    (
        "`fit sensor --spectral-test on` (also `auto`: on for one channel) adds a spectral-residual test (Ren"
        " et al. 2019) to the likelihood, the way the recent-change test joins it: per channel and window, "
        "the stretch of the reference (100 samples by default, `--reference`) and the last two windows, "
        "ending with the window's last sample, with 5 samples extrapolated past it; log amplitude spectrum "
        "minus its 3-bin local average, transformed back with the stretch's phases; the test is the largest "
        "saliency of the last two windows over the mean saliency of the reference, its log calibrated on the "
        "normal fit data (`params.spectral`, `params.calibration.spectral_loc/spectral_spread`). Models "
        "fitted without it, this one included, load and score as before."
    ),
    "",
    (
        "Measured (int8 ONNX, likelihood, 1 thread, 2 shared cores), today's defaults against the same with "
        "`--spectral-test on`:"
    ),
    "",
    "| benchmark | default (off) | spectral test on |",
    "|---|---|---|",
    (
        "| NAB-like seeds 1-8, mean (spread max-min) | 56.2 (27.2), 213/326 caught, 207 false onsets | 57.1 "
        "(22.1), 216/326, 196 |"
    ),
    "| per seed 1-8 | 52.3 49.2 63.5 55.8 67.9 59.7 40.7 60.5 | 52.2 51.2 61.6 59.7 65.3 60.1 43.2 63.1 |",
    "| NAB-like seeds 9-16 (held out), mean (spread) | 55.5 (13.4) | 55.1 (11.6) |",
    "| NAB-like seeds 1-8 with `--recent-test off` | 46.7 | 50.6 |",
    "| SKAB Volume Flow RateRMS alone: F1, false alarms/day | 0.778, 35.5 | 0.770, 39.1 |",
    "| SKAB Accelerometer1RMS alone | 0.440, 35.5 | 0.459, 28.4 |",
    "| SKAB Temperature alone | 0.438, 32.0 | 0.420, 35.5 |",
    "| SKAB Pressure alone | 0.162, 24.9 | 0.184, 24.9 |",
    "| SKAB all 8 channels | 0.805, 7.1 | 0.782, 10.7 |",
    (
        "| one channel x 20 (temperature, defaults) batched windows/s, + logic; unbatched p95 | 109,169, "
        "46,823; 2.15 ms | 73,115, 49,048; 0.96 ms |"
    ),
    "",
    (
        "Why it is off: on seeds 1-8 it gained 0.9 points (paired differences -2.6 to +3.9, 5 of 8 up), far "
        "below the seed-to-seed spread, and on held-out seeds 9-16 it lost 0.4; on SKAB it moves single "
        "channels by at most 0.022 F1 either way but raises false alarms/day by 10-11% on flow and "
        "temperature, and it costs the five-channel protocol 0.023 F1 and 50% more false alarms. Without the "
        "recent-change test it recovers about 4 of that test's 9.5 points: the two see the same things "
        "(spikes, the onset of a shift), and with the step test on it adds little. A spike is seen from the "
        "window ending one sample after it (at the newest sample the extrapolation continues it, as a step). "
        "The misses that remain are mostly small spikes (1.5-2.5 noise spreads on the hetero, steps and walk "
        "families), level shifts and cycle breaks, which a saliency map does not separate from normal "
        "variation. Tried and no better on seeds 1-8: the SR service's per-point score (the newest saliency "
        "against the mean of the 21 before it, max over the two windows) 57.1; the mean instead of the max "
        "over the two windows 56.2; half the reference 57.9 (held out: 55.9, against 55.5); three times the "
        "reference 55.6."
    ),
    "",
    (
        "Reproduce: `python -m bench.sensor_nablike --seeds 1,2,3,4,5,6,7,8 --series 20 --variants "
        '"default;spectral-on;recent-off,spectral-on"` (and `--seeds 9,10,11,12,13,14,15,16 --variants '
        '"default;spectral-on"`); `python -m bench.sensor_skab --data ../shared/data/skab --variants '
        'onnx-int8 --decide-on likelihood --channel "Volume Flow RateRMS" --spectral-test on` (per channel, '
        "and without `--channel`; `--spectral-test off` is the default); `python -m "
        "edge_agent.tasks.sensor.synth --out normal.csv --hours 8 --seed 1 --normal-only`, `edge-agent fit "
        "sensor --normal normal.csv --out M1 --channels temperature --spectral-test on`, `python -m "
        "bench.sensor_throughput --model M1 --variants onnx-int8 --windows 50000` (load average 6.2 during "
        "both runs: the batched figures are noisy, each within the 20,000 windows/s and 5 ms p95 budget)."
    ),
]


def write_card(model_dir: Path, manifest: Manifest, metrics: dict[str, Any]) -> Path:
    params = manifest.params
    lines = [
        f"# {manifest.name} {manifest.version}",
        "",
        "Anomaly score for windows of machine sensor samples (1 Hz), with debounced anomaly_start / anomaly_end "
        "events on the device.",
        "",
        "## Model",
        "",
        f"- Input: windows of {params['window']['size']} samples x {len(params['channels'])} channels "
        f"({', '.join(params['channels'])}), NTC, normalised with the mean/std in manifest params.",
        f"- Network: linear window autoencoder of rank {params['fit']['latent']} (principal directions of the normal "
        "windows), encoder and decoder multiplied out into one dense layer so int8 has one stage. Files: onnx-fp32, "
        "onnx-int8 (static QDQ S8S8, per-channel weights), tflite-int8 (full integer, float in/out).",
        "- Raw score: mean over channels of |window - reconstruction| divided by the channel's mean normal error "
        f"(1.0 = typical normal window). Threshold {manifest.thresholds['score']:.4f} = 0.995 quantile of the "
        "normal scores x 1.4.",
        "- Likelihood (what the device decides on, and what events, Prometheus `edge_anomaly_likelihood` and the "
        "result payload carry): the share of normal windows expected to score lower. It combines the joint "
        "log-error z-score with the largest per-channel one, Sidak-corrected for the number of channels (so one "
        "channel far outside its range alarms among many without more false alarms), and maps the result so that "
        "its 99th percentile on normal windows is 0.99; all of it fitted on cross-fitted errors (3 contiguous "
        "folds, each scored by a network fitted without it). For a single channel (fit's defaults) two more tests "
        "join it: a level test (the window mean against normal window means) and a recent-change test (the "
        "largest step between samples over the last two windows against the typical step of the samples before "
        "them, `edge_agent/tasks/sensor/recent.py`), each calibrated on the normal fit data, so a level shift or "
        "a spike inside the normal range is seen within a window; this five-channel model has neither (the "
        "recent-change test lowered multichannel SKAB F1, see below). Threshold "
        f"{manifest.thresholds.get('likelihood', 0.999)}; an anomaly starts after one window span above it and "
        "ends after two window spans below the clear level. One-channel models (fit's default) also start after "
        "two windows when one reaches 0.999999 (`fast_likelihood`: about one normal window in a million, so "
        "waiting only delays the alarm), and adapt their normal levels with a 3-day time constant on windows judged "
        "normal, frozen while an anomaly is pending or open (`adapt_s`, chosen on NAB-like streams, see below); "
        "this model has neither (see below).",
        "- int8 ranges are calibrated on normal windows plus copies with channels offset by up "
        "to 8 std, so abnormal inputs are not clipped to normal. A channel frozen for a whole window (range under "
        "2% of the smallest normal-window range) gets twice the threshold as its error.",
        f"- Window {params['window']['size']} samples, not fit's default 20 (chosen on SKAB, see below): on the "
        "synthetic machine the slow faults need a minute of context; measured during development (fp32, "
        "min_windows 3, no flatline check) F1 0.73 vs 0.47 and 7 vs 27 false alarms/day on the 24 h set below.",
        "",
        "## Training data",
        "",
        "8 h of synthetic normal operation at 1 Hz from `edge_agent.tasks.sensor.synth` (seed 1): load set points "
        "held 5-30 min with ramps, pump-curve pressure, load-following current/flow/vibration, lagged motor "
        "temperature over a daily ambient cycle, slow pressure-sensor drift. No real machine data: fit your own "
        "machine with `edge-agent fit sensor --normal normal.csv --out models/NAME`.",
        "",
        "## Accuracy on real data: SKAB",
        "",
        *_skab(metrics),
        "",
        "## Accuracy on synthetic faults (this model)",
        "",
        *_synthetic(metrics),
        "",
        "## Other streams: one channel, one faulty channel among 52, drift",
        "",
        *_streams(metrics),
        "",
        "## One-channel defaults on NAB-like streams",
        "",
        *_nablike(metrics),
        "",
        "## Spectral-residual test (one-channel option, off by default)",
        "",
        *SPECTRAL_SECTION,
        "",
        "## Throughput",
        "",
        *_throughput(metrics),
        "",
        "## Where it fails",
        "",
        "- Sensor freeze: the autoencoder alone caught 4 of 12 synthetic freezes (a stuck plausible value "
        "reconstructs well); the flatline check (a channel whose window range falls under 2% of the smallest "
        f"range of any normal window, params.flatline) catches them, but only after a whole window "
        f"({params['window']['size']} samples) of identical readings, and never on a channel that sits still in "
        "normal data (min_range 0), such as SKAB's quantised flow rate.",
        "- Top channels are shares of the reconstruction error: a large deviation in one channel also disturbs "
        "the reconstruction of the others, so a quiet, precise channel can be named before the faulty one "
        "(on the synthetic bearing wear, flow and current came before vibration).",
        "- Operating regimes absent from the normal data (new loads, seasons, products) score as abnormal: refit.",
        "- On SKAB most false alarms come right after a fault, when the pump has not returned to the state of the "
        "training rows (temperatures drifted); most misses are faults that stay within normal ranges (two SKAB "
        "runs are never detected).",
        "- The likelihood is calibrated on the normal data the fit saw: when later normal data differ more (drift, "
        "new set points), more than 0.1% of normal windows pass 0.999. On SKAB's held-out normal rows the share "
        "above 0.99 was 0-80% per file (median about 5%): 400 rows (7 minutes) do not show a machine's range. "
        "Adaptation and `cmd/rebaseline` are the remedies: one-channel models (fit's default) adapt with a 3-day "
        "time constant (`params.decision.adapt_s`; `fit sensor --adapt off`, or `adapt: null` in the task), "
        "multichannel ones, like this model, do not unless the config sets `adapt`.",
        "- Adaptation (one-channel default) follows anything slower than its time constant that never raises an "
        "alarm: on the synthetic slow fault ramp it delayed detection (see the adaptation table above); it is "
        "frozen only while an anomaly is pending or open.",
        "- Decisions take one window span (here 60 s) of abnormal data before anomaly_start (one-channel models: "
        "unless a window reaches the fast likelihood): slower than the raw-score state (5 windows) but far fewer "
        "false alarms. "
        "Without the fast start that span was most of the delay on the one-channel synthetic streams (5700 s at "
        "5-minute samples); the fast start (one-channel models) brought level shifts and spikes to 300 s and "
        "variance changes to 1300 s for up to 0.12 more false alarms/day (drift stream; 0.03/day on the hourly "
        "normal one). Faults that stay near the threshold still wait a span; `fast_likelihood: null` restores "
        "the plain debounce.",
        "- One channel: the recent-change test raises an alarm on a single step larger than any in the normal "
        "data (on three weeks of held-out AR(1) data, one 4.1-sigma step against the fit's largest 3.6 raised one "
        "alarm), and sees only steps: a drift or a variance change is left to the window model and the level test "
        "(a slow drift is still found late, 13,350 s on the synthetic streams).",
        "- This shipped model knows only the synthetic machine; its thresholds mean nothing for other machines.",
        "",
        "Rebuild: `python models/build/sensor/build.py --fit-python PYTHON --skab /path/to/skab --throughput t.json`. "
        "This card: `python models/build/sensor/build.py --skip-fit --skab-json skab.json --throughput t.json "
        "--streams s.json --nablike n.json` with the JSON of the commands above (the five-channel recipe did not "
        "change with the recent-change test or the one-channel adaptation, both off for it, so the model files "
        "were kept).",
        "",
    ]
    path = model_dir / "MODEL_CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
