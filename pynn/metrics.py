"""Metrics for `Model.fit` / `evaluate`: plain functions of (pred, target) returning a float.

Arguments come in pynn's loss order, prediction first (Keras's metric functions take
`(y_true, y_pred)`). Both may be NumPy arrays or Tensors; nothing here records a graph or calls
the model, so fit reads its metrics from the batch outputs it already has.

    from pynn import metrics
    metrics.accuracy(probs, labels)          # picks the right variant from the shapes, as Keras
    metrics.get("top_k_categorical_accuracy")
"""
import numpy as np

__all__ = ["accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
           "mean_squared_error", "mse", "mean_absolute_error", "mae", "get"]


def _fraction(hits):
    """The fraction of True in a boolean array (np.count_nonzero: ~10x cheaper than np.mean on a
    batch, and fit computes metrics every step)."""
    return int(np.count_nonzero(hits)) / hits.size if hits.size else float("nan")


def _array(x):
    if type(x) is np.ndarray:
        return x
    data = getattr(x, "data", x)
    return data if isinstance(data, np.ndarray) else np.asarray(data)


def _labels(name, pred, target):
    """Integer labels (N,) (or (N, 1)) checked against scores (N, C)."""
    if pred.ndim < 2:
        raise ValueError(f"{name}: expected scores of shape (batch, classes), got {pred.shape}")
    if target.ndim == pred.ndim and target.shape[-1] == 1:
        target = target.reshape(target.shape[:-1])
    if target.shape != pred.shape[:-1]:
        raise ValueError(f"{name}: scores of shape {pred.shape} need labels of shape "
                         f"{pred.shape[:-1]}, got {target.shape}")
    return target


def _same_shape(name, pred, target):
    """Equal shapes; a target with the same number of elements (e.g. (N,) for (N, 1)) is
    reshaped, as Keras does."""
    if target.shape != pred.shape:
        if target.size != pred.size:
            raise ValueError(f"{name}: prediction has shape {pred.shape} but target has shape "
                             f"{target.shape}")
        target = target.reshape(pred.shape)
    return target


def binary_accuracy(pred, target, threshold=0.5):
    """Fraction of `pred > threshold` equal to the 0/1 `target` (Keras binary_accuracy)."""
    pred, target = _array(pred), _array(target)
    target = _same_shape("binary_accuracy", pred, target)
    return _fraction((pred > threshold) == (target > 0.5))


def categorical_accuracy(pred, target):
    """Fraction of rows whose highest score is at the target's highest entry (one-hot rows)."""
    pred, target = _array(pred), _array(target)
    if target.shape != pred.shape:
        raise ValueError(f"categorical_accuracy: needs one-hot targets of shape {pred.shape}, got "
                         f"{target.shape} (use sparse_categorical_accuracy for integer labels)")
    return _fraction(pred.argmax(-1) == target.argmax(-1))


def sparse_categorical_accuracy(pred, target):
    """Fraction of rows whose highest score is at the integer label."""
    pred, target = _array(pred), _array(target)
    target = _labels("sparse_categorical_accuracy", pred, target)
    return _fraction(pred.argmax(-1) == target)


def sparse_top_k_categorical_accuracy(pred, target, k=5):
    """Fraction of rows whose label is among the k highest scores. As tf.math.in_top_k, a label
    counts when fewer than k classes score strictly higher than it (ties straddling the k-th place
    count as in)."""
    pred, target = _array(pred), _array(target)
    target = _labels("sparse_top_k_categorical_accuracy", pred, target)
    if int(k) < 1:
        raise ValueError(f"sparse_top_k_categorical_accuracy: k must be >= 1, got {k}")
    flat = pred.reshape(-1, pred.shape[-1])
    labels = target.reshape(-1).astype(np.intp)
    if labels.size and (labels.min() < 0 or labels.max() >= flat.shape[1]):
        raise ValueError(f"sparse_top_k_categorical_accuracy: labels must lie in "
                         f"[0, {flat.shape[1] - 1}]")
    score = flat[np.arange(len(labels)), labels]
    higher = (flat > score[:, None]).sum(axis=1)
    return _fraction(higher < k)


def top_k_categorical_accuracy(pred, target, k=5):
    """sparse_top_k_categorical_accuracy with one-hot targets."""
    pred, target = _array(pred), _array(target)
    if target.shape != pred.shape:
        raise ValueError(f"top_k_categorical_accuracy: needs one-hot targets of shape "
                         f"{pred.shape}, got {target.shape}")
    return sparse_top_k_categorical_accuracy(pred, target.argmax(-1), k)


def accuracy(pred, target):
    """Keras's "accuracy": binary for one score per sample (shape (N,) or (N, 1)), categorical
    when the target is one-hot rows like `pred`, sparse categorical for integer labels."""
    pred, target = _array(pred), _array(target)
    if pred.ndim >= 2 and pred.shape[-1] > 1:
        if target.shape == pred.shape:
            return categorical_accuracy(pred, target)
        return sparse_categorical_accuracy(pred, target)
    return binary_accuracy(pred, target)


def mean_squared_error(pred, target):
    """Mean of (pred - target) ** 2 over every element."""
    pred, target = _array(pred), _array(target)
    target = _same_shape("mean_squared_error", pred, target)
    d = pred.astype(np.float64) - target
    return float(np.dot(d.ravel(), d.ravel()) / d.size) if d.size else float("nan")


def mean_absolute_error(pred, target):
    """Mean of |pred - target| over every element."""
    pred, target = _array(pred), _array(target)
    target = _same_shape("mean_absolute_error", pred, target)
    d = np.abs(pred.astype(np.float64) - target)
    return float(d.sum() / d.size) if d.size else float("nan")


mse = mean_squared_error
mae = mean_absolute_error

METRICS = {
    "accuracy": accuracy, "acc": accuracy,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
}


def get(identifier):
    """A metric function from its name (Keras names and aliases), or a callable unchanged."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in METRICS:
        return METRICS[identifier]
    raise ValueError(f"unknown metric {identifier!r}; known names: {', '.join(sorted(METRICS))}, "
                     "or pass a function metric(pred, target) -> float")
