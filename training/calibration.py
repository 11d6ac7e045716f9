"""How far a model's confidence can be trusted: temperature scaling, calibration error, the uncertain line."""

from __future__ import annotations

import numpy as np

BINS = 15
# Share of held-out digits allowed below the uncertain line: the line catches most wrong
# answers while flagging only one real digit in a hundred.
FLAGGED_SHARE = 0.01


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probabilities = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(probabilities, 1e-12)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (one parameter: a fine grid will do)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8), 400))
    return float(grid[np.argmin([nll(logits, labels, t) for t in grid])])


def ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: |accuracy - confidence| averaged over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def uncertain_line(probabilities: np.ndarray) -> float:
    """The confidence below which an answer is flagged uncertain."""
    return float(np.quantile(probabilities.max(axis=1), FLAGGED_SHARE))


def confusion(predicted: np.ndarray, labels: np.ndarray, classes: int = 10) -> list[list[int]]:
    """Rows are true digits, columns predicted ones."""
    matrix = np.zeros((classes, classes), int)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix.tolist()
