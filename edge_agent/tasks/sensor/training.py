"""Fitting of the window autoencoders: linear (closed form, numpy) or MLP (torch, the `train` extra).

Never imported by the daemon. Both give a `Weights` stack of dense layers that export.py turns into
ONNX and TFLite files, so the two formats run exactly the same network.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import RuntimeUnavailableError

logger = logging.getLogger(__name__)

TRAIN_HINT = "pip install 'edge-agent[train]' (torch CPU, onnx, tensorflow-cpu), then run the fit command again"


def import_torch() -> Any:
    """torch as an untyped module: it is optional, and the daemon's type checks must not need it."""
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise RuntimeUnavailableError(f"fitting a sensor model needs torch: {TRAIN_HINT}") from exc
    return torch


ARCHITECTURES = ("linear", "mlp")


@dataclass(frozen=True)
class TrainSettings:
    """Autoencoder kind, size and training schedule; the defaults were chosen on SKAB (see the model card)."""

    architecture: str = "linear"
    hidden: int = 64
    latent: int = 16
    epochs: int = 150
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    noise_std: float = 0.0
    seed: int = 0
    threads: int = 1


@dataclass
class Weights:
    """Dense layers of the trained autoencoder, (in, out) matrices and biases, in order; ReLU between
    layers when `relu` is set (MLP), none for the linear autoencoder."""

    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    window: int
    channels: int
    relu: bool

    def folded(self) -> Weights:
        """A linear stack multiplied out into one layer (the same function, one int8 stage instead of two).

        Measured on SKAB: a separate int8 bottleneck saturates on out-of-range inputs and cost
        0.02 F1 against fp32; the folded rank-k layer kept int8 within 0.2% of fp32.
        """
        if self.relu or len(self.kernels) == 1:
            return self
        kernel, bias = self.kernels[0].astype(np.float64), self.biases[0].astype(np.float64)
        for k, b in zip(self.kernels[1:], self.biases[1:]):
            kernel, bias = kernel @ k, bias @ k + b
        return Weights([kernel.astype(np.float32)], [bias.astype(np.float32)], self.window, self.channels, False)

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        """fp32 reference forward pass in numpy (N x T x C -> N x T x C)."""
        x = windows.reshape(len(windows), -1).astype(np.float32)
        last = len(self.kernels) - 1
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            x = x @ kernel + bias
            if self.relu and i != last:
                np.maximum(x, 0, out=x)
        return x.reshape(windows.shape)


def _module(torch: Any, window: int, channels: int, settings: TrainSettings) -> Any:
    nn = torch.nn
    features = window * channels
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(features, settings.hidden),
        nn.ReLU(),
        nn.Linear(settings.hidden, settings.latent),
        nn.ReLU(),
        nn.Linear(settings.latent, settings.hidden),
        nn.ReLU(),
        nn.Linear(settings.hidden, features),
        nn.Unflatten(1, (window, channels)),
    )


def train_autoencoder(windows: np.ndarray, settings: TrainSettings) -> Weights:
    """Fit the configured autoencoder to normalised normal windows (N x T x C)."""
    if settings.architecture == "linear":
        return fit_linear(windows, settings.latent)
    if settings.architecture == "mlp":
        return train_mlp(windows, settings)
    raise ValueError(f"unknown architecture {settings.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


def fit_linear(windows: np.ndarray, latent: int) -> Weights:
    """Linear autoencoder in closed form: project onto the top principal directions of the flattened windows.

    This is the optimum a linear encoder/decoder pair reaches by gradient descent on squared error,
    found exactly, with no seed to depend on.
    """
    count, window, channels = windows.shape
    flat = windows.reshape(count, -1).astype(np.float64)
    centre = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - centre, full_matrices=False)
    basis = vt[: min(latent, len(vt))]
    encoder = basis.T
    return Weights(
        kernels=[encoder.astype(np.float32), basis.astype(np.float32)],
        biases=[(-centre @ encoder).astype(np.float32), centre.astype(np.float32)],
        window=window,
        channels=channels,
        relu=False,
    )


def train_mlp(windows: np.ndarray, settings: TrainSettings) -> Weights:
    """Fit the MLP autoencoder with torch to normalised normal windows (N x T x C)."""
    torch = import_torch()
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    count, window, channels = windows.shape
    model = _module(torch, window, channels, settings)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    data = torch.from_numpy(windows.astype(np.float32))
    steps_per_epoch = max(1, int(np.ceil(count / settings.batch_size)))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.epochs * steps_per_epoch)
    model.train()
    for epoch in range(settings.epochs):
        order = torch.from_numpy(rng.permutation(count))
        total = 0.0
        for step in range(steps_per_epoch):
            batch = data[order[step * settings.batch_size : (step + 1) * settings.batch_size]]
            noisy = batch + settings.noise_std * torch.randn_like(batch) if settings.noise_std > 0 else batch
            loss = torch.mean((model(noisy) - batch) ** 2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        if epoch % 50 == 0 or epoch == settings.epochs - 1:
            logger.info("epoch %d/%d loss %.5f", epoch + 1, settings.epochs, total / count)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    return Weights(
        kernels=[m.weight.detach().numpy().T.copy() for m in linears],
        biases=[m.bias.detach().numpy().copy() for m in linears],
        window=window,
        channels=channels,
        relu=True,
    )
