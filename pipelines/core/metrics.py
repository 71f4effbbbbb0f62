"""Classification metrics (scikit-learn), one dict shape for every model and baseline."""
from __future__ import annotations

from typing import Sequence


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Rows of the confusion matrix are true labels, columns predictions, both in `labels` order.
    Values are rounded to 6 decimals so metrics files are stable across platforms.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=idx, average="macro", zero_division=0)), 6),
        "per_class": {
            lab: {"precision": round(float(p[i]), 6), "recall": round(float(r[i]), 6),
                  "f1": round(float(f[i]), 6), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }
