"""Results tables: ``{method: {metric: value}}`` -> a Markdown table and a JSON file.

A value is a number, or an interval: any object with ``value``, ``low`` and ``high`` attributes
(:class:`sketchcolor.evaluation.fid.Interval`) or a dict with those keys; it prints as
``12.3 [11.1, 13.6]``. Anything else that is not a number (a count, a string) prints as it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from sketchcolor.atomic import write_text_atomic

# Which way is better, for the header arrows; metrics not listed get no arrow.
LOWER_IS_BETTER = ("fid", "kid", "color_distance", "vgg_feature_distance")
HIGHER_IS_BETTER = ("psnr", "ssim", "lines_kept", "line_preservation", "edge_correlation", "top1", "within_one",
                    "neighbourhood_mass", "correspondence")


def _interval(v: Any) -> tuple[float, float, float] | None:
    """(value, low, high) when ``v`` is an interval, else None."""
    if isinstance(v, Mapping) and {"value", "low", "high"} <= set(v):
        return float(v["value"]), float(v["low"]), float(v["high"])
    if all(hasattr(v, k) for k in ("value", "low", "high")):
        return float(v.value), float(v.low), float(v.high)
    return None


def _number(x: float, digits: int) -> str:
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x != 0 and (abs(x) < 10 ** -(digits - 1) or abs(x) >= 10**6):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}f}" if abs(x) < 100 else f"{x:.{max(digits - 2, 1)}f}"


def format_value(v: Any, digits: int = 3) -> str:
    """One table cell: ``1.234``, ``12.3 [11.1, 13.6]``, ``∞``, ``–`` (missing or NaN)."""
    if v is None:
        return "–"
    iv = _interval(v)
    if iv is not None:
        return f"{_number(iv[0], digits)} [{_number(iv[1], digits)}, {_number(iv[2], digits)}]"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    try:
        return _number(float(v), digits)
    except (TypeError, ValueError):
        return str(v)


def _arrow(metric: str) -> str:
    key = metric.lower()
    if any(key == m or key.endswith("_" + m) or key.startswith(m + "_") for m in LOWER_IS_BETTER):
        return " ↓"
    if any(key == m or key.endswith("_" + m) or key.startswith(m + "_") for m in HIGHER_IS_BETTER):
        return " ↑"
    return ""


def metric_names(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every metric that appears, in first-seen order."""
    names: list[str] = []
    for row in results.values():
        names += [k for k in row if k not in names]
    return names


def markdown_table(
    results: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    digits: int = 3,
    method_header: str = "method",
    arrows: bool = True,
) -> str:
    """Rows are methods (in the dict's order), columns ``metrics`` (default: all, first-seen order).

    Missing cells print as ``–``; arrows in the header say which way is better where known.
    """
    metrics = list(metrics) if metrics is not None else metric_names(results)
    header = [method_header] + [m + (_arrow(m) if arrows else "") for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(metrics) + "|"]
    for method, row in results.items():
        cells = [str(method)] + [format_value(row.get(m), digits) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: dataclasses and numpy values unpacked, ``inf`` as the string ``"inf"``
    (``"-inf"``), NaN as ``null``, paths as strings."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalars / arrays, tensors
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    return str(obj)


def write_json(results: Mapping[str, Mapping[str, Any]], path: str | Path, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"meta": meta, "results": results}`` to ``path`` atomically (temporary file + rename).

    ``meta`` should say how the numbers were made: data, split, image counts, seed, FID network
    and resize mode (:meth:`sketchcolor.evaluation.fid.InceptionFeatures.describe`), hardware.
    """
    payload = {"meta": to_jsonable(dict(meta or {})), "results": to_jsonable(results)}
    return write_text_atomic(Path(path), json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read a file written by :func:`write_json`: ``(meta, results)``; ``"inf"`` strings come back as floats."""

    def revive(v: Any) -> Any:
        if v in ("inf", "-inf"):
            return float(v)
        if isinstance(v, dict):
            return {k: revive(x) for k, x in v.items()}
        if isinstance(v, list):
            return [revive(x) for x in v]
        return v

    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return revive(payload.get("meta", {})), revive(payload["results"])
