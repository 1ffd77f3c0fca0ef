"""Make ``sklearn_metrics.json``: scikit-learn's confusion matrix and per-class scores on
fixed predictions, for ``tests/test_evaluate.py``.

The predictions are random but fixed (``numpy.random.default_rng(0)``): 2,000 labels of 10
classes, about 80 % predicted right. Class 7 is never predicted (its precision divides by
zero) and class 9 never occurs (its recall does). scikit-learn is not a dependency of
scratchlr; to re-make the file, where it is installed:

    python tests/data/make_sklearn_metrics.py    # writes tests/data/sklearn_metrics.json

The file in the repository was made with scikit-learn 1.9.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

SCORES = ("precision", "recall", "f1", "support")  # what precision_recall_fscore_support returns


def main() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 9, 2000)  # no class 9
    yhat = np.where(rng.random(2000) < 0.8, y, rng.integers(0, 10, 2000))
    yhat[yhat == 7] = 6  # no prediction of 7
    labels = list(range(10))

    def scores(average: str | None) -> dict:
        found = precision_recall_fscore_support(
            y, yhat, labels=labels, average=average, zero_division=0
        )
        return dict(zip(SCORES, found))

    per_class = scores(None)
    macro = scores("macro")
    out = {
        "sklearn_version": sklearn.__version__,
        "y": y.tolist(),
        "yhat": yhat.tolist(),
        "confusion_matrix": confusion_matrix(y, yhat, labels=labels).tolist(),
        **{name: per_class[name].tolist() for name in SCORES},
        "macro": {name: macro[name] for name in ("precision", "recall", "f1")},
    }
    Path(__file__).with_name("sklearn_metrics.json").write_text(json.dumps(out))
    print(f"wrote sklearn_metrics.json with scikit-learn {sklearn.__version__}")


if __name__ == "__main__":
    main()
