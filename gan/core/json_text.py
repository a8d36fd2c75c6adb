"""JSON for other tools: the standard's, which has no infinity and no NaN.

Python's json writes them as `Infinity` and `NaN`, which strict readers (JavaScript's
JSON.parse, serde_json, jq) refuse, so a non-finite float is written as the text TOML
and Python spell it with: "inf", "-inf" or "nan". A reader that needs the number back
knows which keys hold floats (`gan.core.config.non_finite_restored`, for a config).
"""

from __future__ import annotations

import json
import math
from typing import Any

NON_FINITE_TEXT = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def standard_json(value: Any, **dump_options: Any) -> str:
    """`value` as `json.dumps` writes it (`dump_options`: indent, ...), its non-finite floats as text."""
    return json.dumps(non_finite_as_text(value), allow_nan=False, **dump_options)


def non_finite_as_text(value: Any) -> Any:
    """`value` with every non-finite float in it, however nested in dicts and lists, as "inf",
    "-inf" or "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: non_finite_as_text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [non_finite_as_text(item) for item in value]
    return value
