"""How far a model's confidence can be trusted: temperature scaling, calibration error, the uncertain line."""

from __future__ import annotations

import numpy as np

BINS = 15
# Answers at or above the uncertain line must have been right this often on the calibration
# writers. Real pens by unseen writers are read wrong a few times in a hundred, often confidently:
# a line flagging a fixed 1 % of them (as fitted on MNIST before) fell to a confidence of 0.52 and
# let most scribbles and letters through unflagged.
SURE_ACCURACY = 0.995


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


def uncertain_line(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The confidence below which an answer is flagged uncertain: the lowest one such that the answers
    at least that confident were right SURE_ACCURACY of the time (the most confident first)."""
    confidence = probabilities.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    right = (probabilities.argmax(axis=1) == labels)[order]
    accuracy = np.cumsum(right) / np.arange(1, len(right) + 1)
    sure = np.flatnonzero(accuracy >= SURE_ACCURACY)
    return float(confidence[order[sure[-1]]]) if len(sure) else 1.0


def confusion(predicted: np.ndarray, labels: np.ndarray, classes: int = 10) -> list[list[int]]:
    """Rows are true digits, columns predicted ones."""
    matrix = np.zeros((classes, classes), int)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix.tolist()
