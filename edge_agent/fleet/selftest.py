"""Run the manifest's sample inputs through a loaded model and compare with its expected outputs."""

from __future__ import annotations

import numpy as np

from edge_agent.errors import EdgeAgentError, UpdateError
from edge_agent.runtime.registry import LoadedModel


def run_self_test(model: LoadedModel) -> str:
    """A line saying what matched, or UpdateError saying which output was off and by how much."""
    spec = model.manifest.self_test
    if spec is None:
        raise UpdateError(f"{model.manifest.name} {model.manifest.version}: the manifest has no self_test samples")
    path = model.directory / spec.file
    try:
        with np.load(path) as samples:
            arrays = {k: samples[k] for k in samples.files}
    except (OSError, ValueError) as exc:
        raise UpdateError(f"self_test: cannot read {path.name}: {exc}") from exc
    inputs = [arrays[f"input_{i}"] for i in range(len(model.manifest.inputs)) if f"input_{i}" in arrays]
    expected = [arrays[f"output_{i}"] for i in range(len(model.manifest.outputs)) if f"output_{i}" in arrays]
    if len(inputs) != len(model.manifest.inputs) or len(expected) != len(model.manifest.outputs):
        raise UpdateError(f"self_test: {path.name} needs input_0.. and output_0.. for every manifest tensor")
    try:
        outputs = model.runtime.run(inputs)
    except EdgeAgentError as exc:
        raise UpdateError(f"self_test: the model failed on its own samples: {exc}") from exc
    worst = 0.0
    for index, (got, want) in enumerate(zip(outputs, expected)):
        if got.shape != want.shape:
            raise UpdateError(f"self_test: output {index} has shape {list(got.shape)}, expected {list(want.shape)}")
        if not np.allclose(got, want, atol=spec.atol, rtol=spec.rtol):
            diff = float(np.max(np.abs(got - want)))
            bounds = f"atol {spec.atol}, rtol {spec.rtol}"
            raise UpdateError(f"self_test: output {index} differs from the expected by up to {diff:.4g} ({bounds})")
        worst = max(worst, float(np.max(np.abs(got - want))) if got.size else 0.0)
    return f"{len(outputs)} output(s) within tolerance (max diff {worst:.3g})"
