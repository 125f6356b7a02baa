"""ROI arithmetic: the manual-vs-AI calculator, net ROI, and a use case's ROI from measured device output."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.messages import TaskKind

DAYS_PER_MONTH = 365.25 / 12
HOURS_PER_MONTH = DAYS_PER_MONTH * 24
# The events that count as a catch for each job: what the business would otherwise have missed.
CATCH_EVENTS: dict[str, tuple[str, ...]] = {
    "defect": ("defect",),
    "shelf": ("out_of_stock", "low_stock"),
    "sensor_anomaly": ("anomaly_start",),
    "classify": (),
}


# ---------------------------------------------------------------- the seed's calculator


class ProcessCost(BaseModel):
    """One process: what it costs a month done by hand and with AI."""

    model_config = ConfigDict(extra="forbid")
    name: str
    manual_cost_month: float = Field(ge=0)
    ai_cost_month: float = Field(ge=0)

    @property
    def savings_month(self) -> float:
        return self.manual_cost_month - self.ai_cost_month


@dataclass(frozen=True)
class CalculatorResult:
    manual_cost_month: float
    ai_cost_month: float
    savings_month: float
    savings_year: float
    reduction_pct: float
    payback_months: float | None


def payback_months(investment: float, savings_month: float) -> float | None:
    """Months until savings repay the investment; None when the savings never do."""
    if investment <= 0:
        return 0.0
    if savings_month <= 0:
        return None
    return investment / savings_month


def calculator(processes: list[ProcessCost], implementation_cost: float = 0.0) -> CalculatorResult:
    """Manual vs AI cost per month, summed over processes, with savings and payback."""
    manual = sum(p.manual_cost_month for p in processes)
    ai = sum(p.ai_cost_month for p in processes)
    savings = manual - ai
    return CalculatorResult(
        manual_cost_month=manual,
        ai_cost_month=ai,
        savings_month=savings,
        savings_year=12 * savings,
        reduction_pct=100.0 * savings / manual if manual else 0.0,
        payback_months=payback_months(implementation_cost, savings),
    )


def net_roi_pct(benefit: float, cost: float) -> float:
    """(benefit - cost) / cost, in percent: EUR 455K on EUR 85K is 435%."""
    if cost <= 0:
        raise ValueError("net ROI needs a positive cost")
    return 100.0 * (benefit - cost) / cost


# ---------------------------------------------------------------- a use case on measured data


class UseCaseParams(BaseModel):
    """Business figures for one use case, entered by the owner; the device measures the rest."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    task: TaskKind
    site: str | None = Field(None, description="Measure only this site (all when omitted).")
    device_id: str | None = Field(None, description="Measure only this device.")
    hourly_cost: float = Field(0, ge=0, description="EUR per staff hour.")
    manual_hours_month: float = Field(0, ge=0, description="Staff hours a month the system takes over at full uptime.")
    manual_seconds_per_item: float = Field(0, ge=0, description="Manual checking time per inspected item.")
    stockout_cost: float = Field(0, ge=0, description="EUR lost per stock-out (shelf).")
    escaped_defect_cost: float = Field(0, ge=0, description="EUR per defect that reaches a customer (defect).")
    downtime_hour_cost: float = Field(0, ge=0, description="EUR per hour of unplanned downtime (sensor).")
    downtime_hours_per_anomaly: float = Field(0, ge=0, description="Downtime hours an early warning avoids.")
    baseline_miss_rate: float = Field(0.5, ge=0, le=1, description="Share of these events the manual process misses.")
    false_alarm_minutes: float = Field(5, ge=0, description="Staff minutes spent checking one false alarm.")
    hardware_cost: float = Field(0, ge=0)
    implementation_cost: float = Field(0, ge=0)
    running_cost_month: float = Field(0, ge=0, description="Maintenance, connectivity, licences.")
    power_watts: float = Field(15, ge=0)
    energy_price_kwh: float = Field(0.30, ge=0)
    amortisation_months: int = Field(36, ge=1)
    cloud_price_per_1k: float = Field(1.0, ge=0, description="EUR per 1,000 inferences on a cloud API.")
    probability_of_success: float = Field(0.8, ge=0, le=1)
    complexity: int = Field(3, ge=1, le=5, description="Implementation complexity, 1 (easy) to 5.")

    def value_per_catch(self) -> float:
        if self.task == "shelf":
            return self.stockout_cost
        if self.task == "defect":
            return self.escaped_defect_cost
        if self.task == "sensor_anomaly":
            return self.downtime_hour_cost * self.downtime_hours_per_anomaly
        return 0.0


@dataclass(frozen=True)
class Measured:
    """What the devices reported for a use case's scope over a period."""

    period_days: float
    inferences: int = 0
    items: int = 0
    catches: int = 0
    confirmed: int = 0
    false_alarms: int = 0
    hours_online: float = 0.0
    uptime_ratio: float | None = None

    def per_month(self, value: float) -> float:
        return value * DAYS_PER_MONTH / self.period_days if self.period_days > 0 else 0.0

    @property
    def false_alarm_share(self) -> float:
        judged = self.confirmed + self.false_alarms
        return self.false_alarms / judged if judged else 0.0


@dataclass(frozen=True)
class EdgeVsCloud:
    inferences_month: float
    cloud_cost_month: float
    edge_cost_month: float
    edge_year1: float
    cloud_year1: float
    edge_after_year1_month: float
    ratio_after_year1: float | None
    target_met: bool | None


@dataclass(frozen=True)
class UseCaseRoi:
    name: str
    benefit_month: float
    labour_month: float
    catches_month: float
    catch_value_month: float
    false_alarm_cost_month: float
    running_cost_month: float
    savings_month: float
    investment: float
    payback_months: float | None
    first_year_net: float
    first_year_roi_pct: float | None
    edge_vs_cloud: EdgeVsCloud


def edge_vs_cloud(params: UseCaseParams, measured: Measured, power_month: float) -> EdgeVsCloud:
    """Cloud price x measured volume against amortised hardware plus power and running costs."""
    volume = measured.per_month(measured.inferences)
    cloud = volume / 1000.0 * params.cloud_price_per_1k
    edge = params.hardware_cost / params.amortisation_months + power_month + params.running_cost_month
    after = power_month + params.running_cost_month  # the hardware is paid for after the first year's budget
    ratio = after / cloud if cloud > 0 else None
    return EdgeVsCloud(
        inferences_month=volume,
        cloud_cost_month=cloud,
        edge_cost_month=edge,
        edge_year1=params.hardware_cost + 12 * after,
        cloud_year1=12 * cloud,
        edge_after_year1_month=after,
        ratio_after_year1=ratio,
        target_met=None if ratio is None else ratio < 0.5,
    )


def use_case_roi(params: UseCaseParams, measured: Measured) -> UseCaseRoi:
    """Monthly savings, payback and first-year ROI of one use case from what its devices measured."""
    uptime = measured.uptime_ratio if measured.uptime_ratio is not None else 1.0
    labour = params.hourly_cost * (
        params.manual_hours_month * uptime + measured.per_month(measured.items) * params.manual_seconds_per_item / 3600
    )
    catches = measured.per_month(measured.catches)
    true_catches = catches * (1 - measured.false_alarm_share)
    catch_value = true_catches * params.value_per_catch() * params.baseline_miss_rate
    false_alarm_cost = catches * measured.false_alarm_share * params.false_alarm_minutes / 60 * params.hourly_cost
    hours_online = measured.per_month(measured.hours_online) if measured.hours_online else HOURS_PER_MONTH * uptime
    power = params.power_watts / 1000 * hours_online * params.energy_price_kwh
    running = params.running_cost_month + power
    benefit = labour + catch_value
    savings = benefit - running - false_alarm_cost
    investment = params.hardware_cost + params.implementation_cost
    net = 12 * savings - investment
    return UseCaseRoi(
        name=params.name,
        benefit_month=benefit,
        labour_month=labour,
        catches_month=true_catches,
        catch_value_month=catch_value,
        false_alarm_cost_month=false_alarm_cost,
        running_cost_month=running,
        savings_month=savings,
        investment=investment,
        payback_months=payback_months(investment, savings),
        first_year_net=net,
        first_year_roi_pct=100.0 * net / investment if investment > 0 else None,
        edge_vs_cloud=edge_vs_cloud(params, measured, power),
    )
