"""Shared scaffolding of the scikit-learn attackers: features in, one estimator per task out.

A subclass says which descriptor it computes (``features``) and which estimator learns from
it (``model``); this class handles the two tasks. Identity: one multi-class estimator.
Attributes: one binary estimator per attribute, or a single multi-output one where the
estimator supports it natively (trees); an attribute with one value in the training labels
is predicted as that value.

Identity scores: the estimator's ``predict_proba`` where it has one, else the softmax of its
``decision_function`` (the SVM: one-vs-rest values derived from its one-vs-one votes), so that
every attacker's scores are probabilities with the prediction at their argmax. The embedding is
the descriptor as the estimator sees it (after its pipeline's scaler, if any).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod

import numpy as np

from veil.adversaries.attackers.base import Attacker, softmax


class _Constant:
    """Stand-in model for an attribute with a single value in the training labels."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((len(x), 1))


class SklearnAttacker(Attacker):
    family = "classical"
    multi_output = False  # True: one estimator fits all (N, M) attribute labels at once

    def __init__(self, seed: int = 0, **_unused) -> None:
        # **_unused: accepts the neural attackers' training options (epochs, device, ...) and ignores them
        super().__init__(seed)
        self.models: list = []

    @abstractmethod
    def features(self, x: np.ndarray) -> np.ndarray:
        """(N, D) descriptors of uint8 (N, 3, h, w) crops."""

    @abstractmethod
    def model(self):
        """A fresh, unfitted scikit-learn estimator."""

    def _fit(self, x: np.ndarray, y: np.ndarray, _validation) -> None:  # no epochs to select
        self._fit_features(self.features(x), y)

    def _fit_features(self, f: np.ndarray, y: np.ndarray) -> None:
        """Fit the estimator(s) of the task on descriptors ``f`` (N, D)."""
        from sklearn.exceptions import ConvergenceWarning

        if self.task == "identity":
            columns = [y]
        elif self.multi_output:
            columns = [y.astype(int)]
        else:
            columns = [y[:, j].astype(int) for j in range(y.shape[1])]
        self.models = []
        with warnings.catch_warnings():
            # max_iter is a training budget, like the epochs of the neural attackers
            warnings.simplefilter("ignore", ConvergenceWarning)
            for col in columns:
                values = np.unique(col)
                self.models.append(_Constant(int(values[0])) if len(values) < 2 else self.model().fit(f, col))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        f = self.features(x)
        preds = [m.predict(f) for m in self.models]
        if self.multi_output:
            return preds[0].reshape(len(x), -1)
        return np.stack(preds, 1)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        model = self.models[0]
        f = self.features(x)
        if hasattr(model, "predict_proba"):
            return model.predict_proba(f)
        d = model.decision_function(f)
        if d.ndim == 1:  # two classes: one signed distance to the boundary, positive = classes_[1]
            d = np.stack([-d, d], 1)
        return softmax(d)

    def _embed(self, x: np.ndarray) -> np.ndarray:
        f = self.features(x)
        model = self.models[0]
        steps = getattr(model, "steps", None)
        # the pipeline's transforms (the scaler): cosine similarities then weigh every descriptor alike
        return model[:-1].transform(f) if steps and len(steps) > 1 else f
