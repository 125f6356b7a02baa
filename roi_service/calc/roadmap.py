"""The 90-day roadmap: foundation, implementation, optimisation, built from readiness, ranked use cases and KPIs."""

from __future__ import annotations

from dataclasses import dataclass, field

from roi_service.calc.readiness import CRITERIA, Readiness

PHASES = (
    ("foundation", "Days 1-30: foundation"),
    ("implementation", "Days 31-60: implementation"),
    ("optimisation", "Days 61-90: optimisation"),
)
# What to do about a weak readiness criterion.
CRITERION_STEPS: dict[str, str] = {
    "data_availability": "Capture the process data digitally: install the camera/sensor feed and keep 4 weeks of it",
    "process_standardisation": "Write down the inspection/restocking procedure so results can be compared",
    "technical_infrastructure": "Provide power, network and an MQTT broker at the site; test the device link",
    "budget_commitment": "Get the hardware, implementation and running budget signed off",
    "organisational_readiness": "Name an owner for the results and brief the operators who will act on alerts",
}
# What to do about a KPI below its target (keys of roi_service.kpi.KPIS).
KPI_STEPS: dict[str, str] = {
    "latency_p50_ms": "Cut inference latency: use the int8 model variant, a smaller input size, pin runtime threads",
    "latency_p95_ms": "Cut latency spikes: isolate pipelines' threads, keep torch out of the daemon, check NMS top-k",
    "latency_p99_ms": "Find the slowest 1% of inferences: check thermal throttling and competing processes",
    "under_target_share": "Bring more inferences under 100 ms: profile pre-/post-processing against the model time",
    "uptime_pct": "Raise uptime to 99.5%: check power and network, watchdog restarts and broker reachability",
    "model_accuracy": "Improve the model: collect and label site images/windows, retrain and re-calibrate int8",
    "operator_precision": "Cut false alarms: review operator feedback and retune thresholds and debouncing",
    "backlog": "Clear the outbox backlog: the device cannot reach the broker fast enough; check the uplink",
}


@dataclass
class Step:
    text: str
    reason: str


@dataclass
class Phase:
    key: str
    title: str
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class UseCaseSummary:
    name: str
    impact: float
    savings_month: float
    payback_months: float | None
    needs_days: float = 0.0  # more data needed before its ROI is known (roi_service.calc.evidence)


@dataclass(frozen=True)
class KpiGap:
    key: str
    label: str
    current: float
    target: float


def _foundation(readiness: Readiness | None) -> Phase:
    phase = Phase(*PHASES[0])
    if readiness is None:
        phase.steps.append(Step("Score readiness (data, process, infrastructure, budget, organisation)", "no score"))
    else:
        if readiness.band == "digitise":
            phase.steps.append(Step("Digitise the process before AI: paper and manual records first", "score < 25"))
        for name in readiness.weakest:
            phase.steps.append(Step(CRITERION_STEPS[name], f"{name.replace('_', ' ')} scored 2 or less"))
    phase.steps.append(Step("Record the baseline: today's manual cost, stock-outs, escaped defects, downtime", "ROI"))
    return phase


def _implementation(ranked: list[UseCaseSummary]) -> Phase:
    phase = Phase(*PHASES[1])
    for case in ranked[:3]:
        payback = "never" if case.payback_months is None else f"{case.payback_months:.1f} months"
        reason = f"impact score {case.impact:,.0f}; payback {payback}"
        if case.needs_days > 0:
            reason = f"ROI not known yet: needs {case.needs_days:.1f} more days of data"
        phase.steps.append(Step(f"Deploy '{case.name}' on the edge device", reason))
    if not ranked:
        phase.steps.append(Step("Enter the business figures of at least one use case", "no use case yet"))
    phase.steps.append(Step("Train operators to confirm or dismiss alerts in the dashboard", "accuracy feedback"))
    return phase


def _optimisation(gaps: list[KpiGap]) -> Phase:
    phase = Phase(*PHASES[2])
    for gap in gaps:
        if gap.key in KPI_STEPS:
            phase.steps.append(Step(KPI_STEPS[gap.key], f"{gap.label} {gap.current:.4g} vs target {gap.target:.4g}"))
    phase.steps.append(Step("Compare measured savings with the business case; pick the next use case", "review"))
    return phase


def build_roadmap(readiness: Readiness | None, ranked: list[UseCaseSummary], gaps: list[KpiGap]) -> list[Phase]:
    """Three phases; every weak criterion and every KPI below target adds the step that addresses it."""
    assert set(CRITERION_STEPS) == set(CRITERIA)
    return [_foundation(readiness), _implementation(ranked), _optimisation(gaps)]
