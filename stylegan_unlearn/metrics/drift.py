"""Attribute drift: how the share of every attribute changes between networks.

Unlearning one feature should leave the others alone (the official code's `results_diff.csv`
shows extrapolation shifting Male/Young/Black_Hair while repulsion keeps them). Given per-sample
attribute flags from a multi-output classifier for each network on the same seeds, this builds a
table of shares per network and their change from the first (original) network.
"""
from typing import Dict, List, Mapping, Sequence

import numpy as np

__all__ = ["attribute_shares", "drift_table", "drift_markdown"]


def attribute_shares(flags: np.ndarray) -> np.ndarray:
    """Share (0–1) of samples that have each attribute, from boolean flags [N, A]."""
    array = np.asarray(flags, dtype=bool)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"attribute flags must be a non-empty [N, A] array, got shape {array.shape}")
    return array.mean(axis=0)


def drift_table(attribute_names: Sequence[str], shares: Mapping[str, Sequence[float]]) -> List[Dict]:
    """Rows {attribute, shares: {network: share}, change: {network: share − original share}}.

    `shares` maps network names to per-attribute shares; its first entry is the original network.
    Rows are sorted by the largest absolute change, so the most disturbed attributes come first.
    """
    if not shares:
        raise ValueError("drift needs the attribute shares of at least one network")
    names = list(shares)
    matrix = np.asarray([np.asarray(shares[n], dtype=np.float64) for n in names])
    if matrix.shape[1] != len(attribute_names):
        raise ValueError(f"{len(attribute_names)} attribute names but the classifier gives {matrix.shape[1]} outputs")
    rows = []
    for a, attribute in enumerate(attribute_names):
        row_shares = {n: float(matrix[i, a]) for i, n in enumerate(names)}
        change = {n: float(matrix[i, a] - matrix[0, a]) for i, n in enumerate(names[1:], start=1)}
        rows.append({"attribute": str(attribute), "shares": row_shares, "change": change})
    rows.sort(key=lambda r: -max([abs(v) for v in r["change"].values()] or [0.0]))
    return rows


def drift_markdown(rows: Sequence[Dict]) -> str:
    """The drift table as Markdown: one column of shares per network, changes in brackets."""
    if not rows:
        return ""
    names = list(rows[0]["shares"])
    lines = ["| attribute | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in rows:
        cells = [f"{100 * row['shares'][names[0]]:.1f}%"]
        for n in names[1:]:
            cells.append(f"{100 * row['shares'][n]:.1f}% ({100 * row['change'][n]:+.1f})")
        lines.append(f"| {row['attribute']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
