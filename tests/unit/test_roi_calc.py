"""The seeds' worked examples reproduced exactly, plus readiness bands, ranking and the roadmap rules."""

from __future__ import annotations

import pytest

from roi_service.calc.readiness import ReadinessScores, assess, band, impact_score, readiness_score
from roi_service.calc.roadmap import KpiGap, UseCaseSummary, build_roadmap
from roi_service.calc.roi import Measured, ProcessCost, UseCaseParams, calculator, net_roi_pct, use_case_roi

SEED_PROCESSES = [
    ProcessCost(name="Invoice processing", manual_cost_month=2400, ai_cost_month=200),
    ProcessCost(name="Quality control", manual_cost_month=3600, ai_cost_month=300),
    ProcessCost(name="Content creation", manual_cost_month=4800, ai_cost_month=400),
]


def test_roi_calculator_seed_example() -> None:
    result = calculator(SEED_PROCESSES, implementation_cost=5000)
    assert result.manual_cost_month == 10_800
    assert result.ai_cost_month == 900
    assert result.savings_month == 9_900
    assert result.savings_year == 118_800
    assert [p.savings_month for p in SEED_PROCESSES] == [2200, 3300, 4400]
    assert result.reduction_pct == pytest.approx(91.6667, abs=1e-4)
    assert result.payback_months is not None and result.payback_months < 1


def test_payback_never_when_ai_costs_more() -> None:
    result = calculator([ProcessCost(name="x", manual_cost_month=100, ai_cost_month=150)], implementation_cost=1000)
    assert result.payback_months is None


def test_predictive_inventory_net_roi_is_435_percent() -> None:
    assert round(net_roi_pct(455_000, 85_000)) == 435
    assert net_roi_pct(455_000, 85_000) == pytest.approx(435.294, abs=1e-3)


@pytest.mark.parametrize(
    ("scores", "total", "expected"),
    [
        ((5, 5, 5, 5, 5), 60, "ready"),
        ((3, 4, 4, 3, 3), 40, "ready"),  # 9+8+8+9+6
        ((4, 3, 3, 3, 3), 39, "preparation"),  # 12+6+6+9+6
        ((2, 2, 2, 3, 1), 25, "preparation"),  # 6+4+4+9+2
        ((2, 2, 2, 2, 2), 24, "digitise"),
        ((1, 1, 1, 1, 1), 12, "digitise"),
    ],
)
def test_readiness_bands(scores: tuple[int, ...], total: int, expected: str) -> None:
    names = (
        "data_availability",
        "process_standardisation",
        "technical_infrastructure",
        "budget_commitment",
        "organisational_readiness",
    )
    model = ReadinessScores(**dict(zip(names, scores)))
    assert readiness_score(model) == total
    assert assess(model).band == expected


def test_band_edges() -> None:
    assert [band(s)[0] for s in (60, 40, 39, 25, 24, 12)] == [
        "ready",
        "ready",
        "preparation",
        "preparation",
        "digitise",
        "digitise",
    ]


def test_readiness_rejects_scores_outside_1_to_5() -> None:
    with pytest.raises(ValueError, match="less than or equal to 5"):
        ReadinessScores(
            data_availability=6,
            process_standardisation=1,
            technical_infrastructure=1,
            budget_commitment=1,
            organisational_readiness=1,
        )


def test_impact_score_ranks_easy_likely_wins_first() -> None:
    big_hard = impact_score(120_000, 0.5, 5)
    small_easy = impact_score(40_000, 0.9, 1)
    assert small_easy == pytest.approx(36_000)
    assert big_hard == pytest.approx(12_000)


def test_use_case_roi_from_measured_defects() -> None:
    params = UseCaseParams(
        name="Line 1 inspection",
        task="defect",
        hourly_cost=30,
        manual_hours_month=160,
        escaped_defect_cost=200,
        baseline_miss_rate=0.5,
        hardware_cost=1500,
        implementation_cost=6000,
        running_cost_month=50,
        power_watts=0,
        cloud_price_per_1k=1.0,
    )
    # 30.4375 days measured: exactly one average month, so monthly figures equal the measured counts.
    measured = Measured(
        period_days=365.25 / 12,
        inferences=300_000,
        items=300_000,
        catches=100,
        confirmed=80,
        false_alarms=20,
        uptime_ratio=1.0,
    )
    roi = use_case_roi(params, measured)
    assert roi.labour_month == pytest.approx(4800)  # 160 h x EUR 30
    assert roi.catch_value_month == pytest.approx(100 * 0.8 * 200 * 0.5)  # true catches x value x miss rate
    assert roi.false_alarm_cost_month == pytest.approx(20 * 5 / 60 * 30)
    assert roi.savings_month == pytest.approx(4800 + 8000 - 50 - 50)
    assert roi.payback_months == pytest.approx(7500 / 12_700)
    assert roi.first_year_roi_pct == pytest.approx(100 * (12 * 12_700 - 7500) / 7500)
    cloud = roi.edge_vs_cloud
    assert cloud.cloud_cost_month == pytest.approx(300.0)
    assert cloud.ratio_after_year1 == pytest.approx(50 / 300)
    assert cloud.target_met is True


def test_roadmap_adds_steps_for_weak_criteria_and_missed_kpis() -> None:
    readiness = assess(
        ReadinessScores(
            data_availability=1,
            process_standardisation=4,
            technical_infrastructure=2,
            budget_commitment=4,
            organisational_readiness=4,
        )
    )
    ranked = [UseCaseSummary("Shelf A", 36_000, 3000, 2.0), UseCaseSummary("Line 1", 12_000, 1000, None)]
    gaps = [KpiGap("uptime_pct", "Uptime", 97.0, 99.5)]
    phases = build_roadmap(readiness, ranked, gaps)

    assert [p.key for p in phases] == ["foundation", "implementation", "optimisation"]
    foundation = " ".join(s.text for s in phases[0].steps)
    assert "Capture the process data" in foundation and "Provide power, network" in foundation
    assert "budget" not in foundation.lower()
    assert "Shelf A" in phases[1].steps[0].text and "payback never" in phases[1].steps[1].reason
    assert any("99.5%" in s.text and "97 vs target 99.5" in s.reason for s in phases[2].steps)
    assert not any("latency" in s.text for s in build_roadmap(readiness, ranked, [])[2].steps)
