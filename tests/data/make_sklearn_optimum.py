"""Make ``sklearn_optimum.npz``: scikit-learn's optimum of the penalised objective on a
small slice of MNIST, for ``tests/test_solvers.py``.

The problem: the first 5,000 images of the training split (``images[5000:10000]`` of the
train file, the seed's split), pixels scaled like TF's (``model.pixels``) in float64, and
``LogisticRegression(C=2)``, whose objective, in scikit-learn >= 1.1, is the mean
cross-entropy plus ||W||^2 / (2 C N): scratchlr's f with lambda = 1 / (C N) = 1e-4. The
multinomial loss (scikit-learn's default for more than two classes with newton-cg) does not
penalise the intercepts, and adding one constant to all of them changes nothing: only b
minus its mean is defined, and that is what the file holds. Solved by ``newton-cg`` with
``tol=1e-10`` (its rule is max|g| <= tol, the same as scratchlr's) and ``max_iter=1000``;
the file records max|g| of scratchlr's own gradient at the result. scikit-learn is not a
dependency of scratchlr; to re-make the file, where it is installed, from the repository:

    PYTHONPATH=$PWD python tests/data/make_sklearn_optimum.py

The file in the repository was made with scikit-learn 1.9.1 (NumPy 2.4.6).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

from scratchlr import model
from scratchlr.objective import Objective

ROOT = Path(__file__).resolve().parents[2]
FIRST = 5000  # the training split starts after the 5,000 validation images
N = 5000  # the slice's size
C = 2.0  # scikit-learn's inverse regularisation strength
WEIGHT_DECAY = 1 / (C * N)  # lambda = 1e-4


def main() -> None:
    images = np.load(ROOT / "data" / "mnist" / "train-images-idx3-ubyte.npy")
    labels = np.load(ROOT / "data" / "mnist" / "train-labels-idx1-ubyte.npy")
    X = model.pixels(images[FIRST : FIRST + N].reshape(N, -1), np.float64)
    y = labels[FIRST : FIRST + N].astype(np.int64)
    fit = LogisticRegression(C=C, solver="newton-cg", tol=1e-10, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed line search or max_iter is no optimum
        fit.fit(X, y)
    W = fit.coef_.T.copy()  # scikit-learn's coef_ is (C, D)
    b = fit.intercept_ - fit.intercept_.mean()
    objective = Objective(X, y, WEIGHT_DECAY)
    grad_W, grad_b = objective.gradient(W, b)
    grad_max = max(np.abs(grad_W).max(), np.abs(grad_b).max())
    np.savez(
        Path(__file__).with_name("sklearn_optimum.npz"),
        W=W,
        b=b,
        value=objective.value(W, b),
        weight_decay=WEIGHT_DECAY,
        first=FIRST,
        n=N,
        grad_max=grad_max,
        n_iter=fit.n_iter_,
        sklearn_version=sklearn.__version__,
    )
    print(
        f"wrote sklearn_optimum.npz: scikit-learn {sklearn.__version__}, {fit.n_iter_[0]}"
        f" iterations, f = {objective.value(W, b):.17g}, max|g| = {grad_max:.2e}"
    )


if __name__ == "__main__":
    main()
