"""The detector's own output as an identity attack: what the boxes alone say about who is who.

Veil's promise is that the cloud's detector still finds every person, so the cloud always learns
each person's box: where they stand and how large they appear. Within a short clip that alone
tells people apart (two people rarely walk the same path at the same distance from the camera),
so no transform that keeps the detector working can push identity below it. This module fits two
classifiers on the box geometry of the attacker-train crops, with no pixels at all, and scores
the attacker-test crops exactly as the pixel attackers are scored (same crops, groups, seeds and
bootstrap resamples, so the verdict can pair any method with it):

* ``box_knn`` / ``box_logistic``: 5 nearest neighbours (distance-weighted) / multinomial logistic
  regression on the standardised box: centre x and y, width and height, each divided by the
  frame's width or height;
* ``size_knn`` / ``size_logistic``: the same on width and height only, which stay with a person
  who walks across the frame while the centre moves.

The method they make, ``boxes only``, is the floor of the audit: an obfuscator measured at the
floor leaks nothing its utility does not already give away; the original frames' lead over it is
what appearance adds. The cloud holds the boxes and the obfuscated pixels together: with
``AuditConfig.fuse_boxes`` (on in the strong and full presets) every identity attacker is also
fused with ``box_logistic`` (``veil.audit.attacks.fuse``), and the attribute floor's four attackers
join every method's attribute attackers (``veil.audit.attacks.with_floor``), so the worst case covers
that adversary on both tasks.
"""

from __future__ import annotations

import numpy as np

from veil.audit.attacks import Predictions
from veil.audit.config import AuditConfig
from veil.audit.figures import Scores
from veil.audit.labels import AttributeTask, IdentityTask
from veil.audit.report import BOXES

__all__ = ["BOXES", "ATTACKERS", "attribute_predictions", "box_features", "box_predictions", "fit_predict"]
ATTACKERS = ("box_knn", "box_logistic", "size_knn", "size_logistic")
_COLUMNS = {"box": [0, 1, 2, 3], "size": [2, 3]}


def box_features(box: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(N, 4) xyxy pixel boxes -> (N, 4) centre x, centre y, width, height, as fractions of the
    frame's (width, height)."""
    w, h = frame_size
    box = np.asarray(box, np.float64).reshape(-1, 4)
    return np.stack([(box[:, 0] + box[:, 2]) / 2 / w, (box[:, 1] + box[:, 3]) / 2 / h,
                     (box[:, 2] - box[:, 0]) / w, (box[:, 3] - box[:, 1]) / h], 1)


def _model(name: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = (KNeighborsClassifier(5, weights="distance") if name.endswith("_knn")
            else LogisticRegression(max_iter=5000, C=10.0))
    return make_pipeline(StandardScaler(), head)


def _described(name: str, fits: int, per: str = "") -> dict:
    """A geometry attacker's budget: its model and the box features it reads."""
    what = "box centre x, y, width, height" if name.startswith("box") else "box width, height"
    return {"model": name, "features": f"{what} (fractions of the frame){per}", "fits": fits}


def fit_predict(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, Scores]:
    """One geometry attacker: fit on the train boxes' features (all four, or the size), return the test predictions and
    the class scores of test (queries) and train (gallery) crops, as the pixel attackers do."""
    cols = _COLUMNS[name.split("_")[0]]
    train_x, test_x = train_x[:, cols], test_x[:, cols]
    model = _model(name).fit(train_x, train_y)
    classes = model.classes_
    test, gallery = model.predict_proba(test_x), model.predict_proba(train_x)
    return classes[np.argmax(test, axis=1)], Scores(test, gallery, classes)


def box_predictions(task: IdentityTask, frame_size: tuple[int, int], config: AuditConfig) -> Predictions:
    """Both geometry attackers on one identity task, shaped like the pixel attackers' predictions
    (``veil.audit.attacks.Predictions``). Both are deterministic: every seed repeats one fit."""
    crops = task.crops
    train, test = crops.split == "train", crops.split == "test"
    x = box_features(crops.box, frame_size)
    truth = crops.identity[test]
    pred, scores, budgets = {}, {}, {}
    for name in ATTACKERS:
        labels, s = fit_predict(name, x[train], crops.identity[train], x[test])
        pred[name] = [labels] * config.seeds
        scores[name] = [s] * config.seeds
        budgets[name] = _described(name, 1)
    return Predictions("identity", truth, truth, pred, budgets, scores, crops.identity[train])


def attribute_predictions(task: AttributeTask, frame_size: tuple[int, int], config: AuditConfig) -> Predictions:
    """The same four classifiers on the attributes, one per attribute, fitted on the attacker-train crops'
    boxes: the attribute floor. In a short clip an attribute can belong to a place as much as to a person (a
    colour read inside the box may be the floor behind the legs), and then the boxes alone predict it."""
    crops = task.crops
    train, test = crops.split == "train", crops.split == "test"
    x, y = box_features(crops.box, frame_size), np.asarray(task.table.values)
    pred, budgets = {}, {}
    for name in ATTACKERS:
        columns = []
        for j in range(y.shape[1]):
            seen = np.unique(y[train, j])
            # an attribute with one value in the attacker-train crops: predict that value (what can be learned)
            columns.append(np.full(int(test.sum()), seen[0] if len(seen) else 0) if len(seen) < 2
                           else fit_predict(name, x[train], y[train, j], x[test])[0])
        pred[name] = [np.stack(columns, 1) if columns else np.zeros((int(test.sum()), 0))] * config.seeds
        budgets[name] = _described(name, y.shape[1], ", one fit per attribute")
    return Predictions("attributes", y[test], task.groups, pred, budgets)
