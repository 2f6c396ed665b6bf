"""When a faster, lossier precision may replace fp32: a lower confidence bound on the dev agreement.

Training (and ``naba export onnx``) measures, on the dev split, the share of
articles whose labels are the same under int8 (torch's dynamic quantisation,
or ONNX Runtime's) as under fp32. That share is a point estimate from a
sample: 35 of 35 dev articles agreeing says little about the next 600
(the quickstart model's topics agreed on all 35 of its dev articles, and the
same int8 run changed 4.7% of 600 ANT label sets). So ``--precision auto``
takes int8 only when the Wilson score interval's lower end (95%) clears
:data:`MIN_AGREEMENT`: with every dev article agreeing, that needs at least
:func:`smallest_dev` articles (381 at 99%); one disagreement needs more.

The evidence is recorded per variant in ``naba.json``
(``precision_evidence``: agreement, lower bound, dev size, confidence), next
to the point estimate (``precision_agreement``) that older models carry alone.
"""

from __future__ import annotations

import logging
import math
from typing import Any

logger = logging.getLogger(__name__)

MIN_AGREEMENT = 0.99  # the share of dev labels a faster precision must keep
CONFIDENCE = 0.95
_Z = 1.959963984540054  # two-sided 95% normal quantile: the Wilson interval's lower end at 95%


def wilson_lower(agreed: float, n: int, z: float = _Z) -> float:
    """The Wilson score interval's lower end for ``agreed`` successes of ``n`` (0.0 for no trials).

    Example:
        >>> round(wilson_lower(35, 35), 3)
        0.901
    """
    if n <= 0:
        return 0.0
    p = agreed / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def smallest_dev(minimum: float = MIN_AGREEMENT, z: float = _Z) -> int:
    """The fewest dev articles, all agreeing, whose Wilson lower bound reaches ``minimum``."""
    return math.ceil(z * z * minimum / (1 - minimum))


def evidence(agreement: float, n: int) -> dict[str, float]:
    """What ``naba.json`` records for one variant: ``agreement``, ``lower_bound``, ``dev_size``,
    ``confidence``."""
    return {
        "agreement": round(float(agreement), 4),
        # rounded down: a bound rounded up to 99% would vouch for what the evidence does not
        "lower_bound": math.floor(wilson_lower(round(agreement * n), n) * 10_000) / 10_000,
        "dev_size": int(n),
        "confidence": CONFIDENCE,
    }


def justified(record: dict[str, Any] | None) -> bool:
    """Whether recorded evidence vouches for the variant: its lower bound reaches 99%."""
    return bool(record) and float(record.get("lower_bound", 0.0)) >= MIN_AGREEMENT


def describe(record: dict[str, Any]) -> str:
    """``99.6% of 500 dev articles, 95% lower bound 98.6%``."""
    return (
        f"{100 * record['agreement']:.1f}% of {int(record['dev_size'])} dev articles, "
        f"{100 * record.get('confidence', CONFIDENCE):.0f}% lower bound "
        f"{100 * record['lower_bound']:.1f}%"
    )


def too_small_note(task: str, variant: str, record: dict[str, Any]) -> str | None:
    """The log line for a dev set whose agreement looks high enough but is too small to vouch
    for it, else None."""
    if justified(record) or record["agreement"] < MIN_AGREEMENT:
        return None
    return (
        f"{task}: {variant} agreed with fp32 on {describe(record)}: the dev set is too small to "
        f"justify {variant} under --precision auto (all of at least {smallest_dev()} dev articles "
        f"must agree for a {100 * MIN_AGREEMENT:.0f}% lower bound); it runs in fp32"
    )
