"""The readiness matrix (five weighted criteria scored 1-5) and the impact score that ranks use cases."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# criterion -> (weight, what it asks); weights sum to 12, so scores run from 12 to 60.
CRITERIA: dict[str, tuple[int, str]] = {
    "data_availability": (3, "Is the data the use case needs captured digitally and accessible?"),
    "process_standardisation": (2, "Is the process done the same way every time, with written steps?"),
    "technical_infrastructure": (2, "Are network, power, cameras/sensors and IT support in place?"),
    "budget_commitment": (3, "Is the budget for hardware, implementation and running costs committed?"),
    "organisational_readiness": (2, "Do staff and management back the change and own the results?"),
}
READY_MIN = 40
PREPARATION_MIN = 25


class ReadinessScores(BaseModel):
    """Scores 1 (not at all) to 5 (fully) per criterion."""

    model_config = ConfigDict(extra="forbid")
    data_availability: int = Field(ge=1, le=5)
    process_standardisation: int = Field(ge=1, le=5)
    technical_infrastructure: int = Field(ge=1, le=5)
    budget_commitment: int = Field(ge=1, le=5)
    organisational_readiness: int = Field(ge=1, le=5)


@dataclass(frozen=True)
class Readiness:
    score: int
    band: str
    verdict: str
    weakest: list[str]


def readiness_score(scores: ReadinessScores) -> int:
    return sum(weight * int(getattr(scores, name)) for name, (weight, _) in CRITERIA.items())


def band(score: int) -> tuple[str, str]:
    """40-60 ready, 25-39 preparation needed, below 25 digitise first."""
    if score >= READY_MIN:
        return "ready", "Ready to implement AI"
    if score >= PREPARATION_MIN:
        return "preparation", "Preparation needed before implementing"
    return "digitise", "Digitise the process first"


def assess(scores: ReadinessScores) -> Readiness:
    score = readiness_score(scores)
    key, verdict = band(score)
    weakest = [name for name in CRITERIA if int(getattr(scores, name)) <= 2]
    return Readiness(score=score, band=key, verdict=verdict, weakest=weakest)


def impact_score(annual_savings: float, probability_of_success: float, complexity: int) -> float:
    """Savings x probability of success / implementation complexity: the ranking key for use cases."""
    if complexity < 1:
        raise ValueError("complexity runs from 1 to 5")
    return annual_savings * probability_of_success / complexity
