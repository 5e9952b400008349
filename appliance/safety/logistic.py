"""Binary logistic regression in numpy, and the cross-validation that picks its strength and
threshold.

The fit is Newton's method (IRLS) on the mean weighted log-loss plus `l2 / 2 * |w|^2` (the bias
is not penalised), with classes weighted to count equally. It uses no randomness: the same data
give the same weights. Folds are stratified and drawn with a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CrossValidation",
    "Fit",
    "auc",
    "balanced_weights",
    "choose_threshold",
    "cross_validate",
    "fit",
    "folds",
    "judged",
    "sigmoid",
]

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

_MAX_STEPS: Final = 100
_TOLERANCE: Final = 1e-10
"""Stop once the objective falls by less than this (relative) in a step."""
_BIAS_RIDGE: Final = 1e-9
"""Keeps the Hessian invertible when one class is empty in a fold."""


@dataclass(frozen=True, slots=True)
class Fit:
    """Weights and bias: score = sigmoid(x . weights + bias)."""

    weights: Floats
    bias: float
    steps: int

    def scores(self, x: Floats) -> Floats:
        return sigmoid(x @ self.weights + self.bias)


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """One L2 strength's out-of-fold scores and what they come to at the chosen threshold."""

    l2: float
    scores: Floats
    """Each row's score from the model fit without its fold."""
    auc: float
    threshold: float
    recall: float
    """Of the unsafe rows, the share scored at or over the threshold."""
    false_alarms: float
    """Of the reference benign rows, the share scored at or over the threshold."""


def sigmoid(z: Floats) -> Floats:
    """1 / (1 + e^-z), without overflow for large |z|."""
    out: Floats = np.empty_like(z, dtype=np.float64)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def balanced_weights(y: Bools, sample: Floats) -> Floats:
    """`sample` scaled so each class's weights sum to half of all the weight."""
    total = float(sample.sum())
    out = sample.astype(np.float64, copy=True)
    for label in (False, True):
        mask = y == label
        held = float(sample[mask].sum())
        if held > 0:
            out[mask] *= total / (2.0 * held)
    return out


def fit(x: Floats, y: Bools, weights: Floats, *, l2: float) -> Fit:
    """Minimise mean weighted log-loss + l2/2 |w|^2 by Newton steps with step halving."""
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    share = weights / weights.sum()
    target = y.astype(np.float64)
    penalty = np.full(d + 1, l2)
    penalty[d] = _BIAS_RIDGE
    theta = np.zeros(d + 1)
    loss = _objective(design, target, share, penalty, theta)
    steps = 0
    for steps in range(1, _MAX_STEPS + 1):  # noqa: B007 - the count is reported
        p = sigmoid(design @ theta)
        gradient = design.T @ (share * (p - target)) + penalty * theta
        hessian = (design * (share * p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
        direction = np.linalg.solve(hessian, gradient)
        size = 1.0
        while True:
            candidate = theta - size * direction
            new = _objective(design, target, share, penalty, candidate)
            if new <= loss or size < 1e-8:
                break
            size /= 2.0
        theta, previous, loss = candidate, loss, new
        if previous - loss <= _TOLERANCE * max(1.0, abs(loss)):
            break
    return Fit(weights=theta[:d].copy(), bias=float(theta[d]), steps=steps)


def _objective(
    design: Floats, target: Floats, share: Floats, penalty: Floats, theta: Floats
) -> float:
    z = design @ theta
    # log(1 + e^z) - y z, written so neither term overflows.
    losses = np.logaddexp(0.0, z) - target * z
    return float(share @ losses + 0.5 * (penalty * theta * theta).sum())


def folds(strata: Sequence[object], k: int, seed: int) -> NDArray[np.int64]:
    """A fold number (0..k-1) for each row; each stratum is shuffled and dealt out in turn."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {k}")
    rng = np.random.default_rng(seed)
    assigned = np.zeros(len(strata), dtype=np.int64)
    offset = 0
    for stratum in sorted(set(strata), key=repr):
        members = np.array([i for i, s in enumerate(strata) if s == stratum], dtype=np.int64)
        members = members[rng.permutation(len(members))]
        assigned[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)
    return assigned


def auc(scores: Floats, y: Bools) -> float:
    """Area under the ROC curve: the chance an unsafe row outscores a benign one (ties half)."""
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both unsafe and benign rows")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def choose_threshold(benign: Floats, *, max_false_alarms: float, decimals: int = 4) -> float:
    """The lowest threshold, on a grid of `decimals`, that flags at most `max_false_alarms` of
    `benign` (scores >= threshold are flagged): the one with the most recall under the bound."""
    if len(benign) == 0:
        raise ValueError("the false-alarm bound needs benign rows to be measured on")
    allowed = math.floor(max_false_alarms * len(benign) + 1e-9)
    if allowed >= len(benign):
        return 0.0
    ranked = np.sort(benign)[::-1]
    # Flag strictly above the (allowed+1)-th highest benign score; on the grid, the next step up.
    highest_unflagged = float(ranked[allowed])
    scale = 10.0**decimals
    threshold = math.floor(highest_unflagged * scale + 1.0) / scale
    while threshold <= highest_unflagged:
        threshold += 1.0 / scale
    return round(threshold, decimals)


def cross_validate(
    x: Floats,
    y: Bools,
    weights: Floats,
    fold: NDArray[np.int64],
    reference: Bools,
    *,
    l2: float,
    max_false_alarms: float,
) -> CrossValidation:
    """Out-of-fold scores for `l2`, the threshold they allow, and its recall and false alarms.

    `reference` marks the benign rows the false-alarm bound is measured on."""
    scores = np.zeros(len(y))
    for k in range(int(fold.max()) + 1):
        held = fold == k
        train = ~held
        model = fit(x[train], y[train], balanced_weights(y[train], weights[train]), l2=l2)
        scores[held] = model.scores(x[held])
    return judged(scores, y, reference, l2=l2, max_false_alarms=max_false_alarms)


def judged(
    scores: Floats, y: Bools, reference: Bools, *, l2: float, max_false_alarms: float
) -> CrossValidation:
    """Out-of-fold `scores` at the threshold the false-alarm bound on `reference` allows."""
    threshold = choose_threshold(scores[reference], max_false_alarms=max_false_alarms)
    flagged = scores >= threshold
    return CrossValidation(
        l2=l2,
        scores=scores,
        auc=auc(scores, y),
        threshold=threshold,
        recall=float(flagged[y].mean()),
        false_alarms=float(flagged[reference].mean()),
    )
