"""A hybrid task's decision rule, typed: what ``naba.json`` records under a task's ``hybrid``.

The rule says which part decides (the encoder, the sparse n-gram part, or a
blend of both) and, for stance, the relevance gate: where the relevance
signal (the probability that the text is not about the target) reaches the
gate's threshold, the neutral label. Training chooses the rule on dev
(:mod:`naba.train.hybrid`); every door applies it through
:meth:`HybridRule.scores`. The models forbid unknown keys: a model directory
whose rule has a misspelt or newer key is refused on load
(:func:`naba.manifest.read_manifest`) instead of deciding differently.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from naba.blend import blend, gate

Part = Literal["encoder", "sparse", "blend"]
GateSource = Literal["encoder", "sparse", "either"]


class RelevanceGate(BaseModel):
    """Stance: where the relevance signal of ``source`` reaches ``threshold``, the label is ``label``.

    ``source``: the encoder (its probability of ``label``), the sparse
    relevance detector (its probability of "not about the target"), or
    either (the larger of the two).
    """

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="The neutral label: what a text not about the target gets.")
    source: GateSource = Field(
        default="encoder", description="Who gives the relevance signal: encoder, sparse or either."
    )
    threshold: float = Field(
        ge=0.0, le=1.0, description="The signal from which the neutral label stands."
    )
    dev_macro_f1: dict[str, float] = Field(
        default_factory=dict,
        description="Dev macro-F1 with its unrelated pairs, without and with the gate "
        "(ungated, gated; real_ungated, real_gated on the real pairs alone).",
    )

    @property
    def reads_encoder(self) -> bool:
        return self.source in ("encoder", "either")

    @property
    def reads_detector(self) -> bool:
        return self.source in ("sparse", "either")


class HybridRule(BaseModel):
    """Which part decides, and how (a task's ``hybrid`` in ``naba.json``).

    Single-label: ``softmax(w log p_encoder + (1 - w) log_softmax(margins / T))``;
    multi-label: ``sigmoid(w logit(p_encoder) + (1 - w) margins / T)``, with
    ``w`` = ``weight`` (1: the encoder alone, 0: the sparse part alone) and
    ``T`` = ``temperature``; then the relevance gate.
    """

    model_config = ConfigDict(extra="forbid")

    choice: Part = Field(description="The part that decides: encoder, sparse or blend.")
    weight: float = Field(ge=0.0, le=1.0, description="The encoder's share w in the blend.")
    temperature: float = Field(gt=0.0, description="Divides the sparse margins in the blend.")
    sparse_temperature: float = Field(
        gt=0.0, description="The sparse part's own temperature, chosen by dev log-loss."
    )
    dev_macro_f1: dict[str, float] = Field(
        default_factory=dict, description="Dev macro-F1 of encoder, sparse and hybrid."
    )
    path: str = Field(
        default="sparse", description="The sparse part's directory, inside the task's."
    )
    relevance_gate: RelevanceGate | None = Field(
        default=None, description="Stance: the relevance gate; none when dev kept no gate."
    )
    chosen_on: str | None = Field(default=None, description="What the rule was chosen on.")
    part_thresholds: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Multi-label: each part's own thresholds on dev, for the side-by-side "
        "of the parts in reports (the hybrid's are the task's thresholds).",
    )

    @property
    def has_gate(self) -> bool:
        """Whether the rule has a relevance gate (its stance entries then carry ``relevance``)."""
        return self.relevance_gate is not None

    @property
    def reads_encoder(self) -> bool:
        """Whether a decision needs the encoder's probabilities."""
        return self.choice != "sparse" or bool(
            self.relevance_gate and self.relevance_gate.reads_encoder
        )

    @property
    def reads_detector(self) -> bool:
        """Whether a decision needs the sparse relevance detector's probabilities."""
        return bool(self.relevance_gate and self.relevance_gate.reads_detector)

    @property
    def reads_sparse(self) -> bool:
        """Whether a decision needs the sparse part (its margins, or its detector)."""
        return self.choice != "encoder" or self.reads_detector

    @property
    def reads_margins(self) -> bool:
        """Whether a decision needs the sparse part's margins (not only its detector)."""
        return self.choice != "encoder"

    def scores(
        self,
        encoder: np.ndarray | None,
        margins: np.ndarray | None,
        labels: list[str],
        multi_label: bool,
        unrelated: np.ndarray | None = None,
    ) -> np.ndarray:
        """The decision's probabilities from its parts: the blend, then the gate.

        Args:
            encoder: The encoder's probabilities (None where the rule does not read it).
            margins: The sparse part's margins (None where the rule does not read them).
            unrelated: The detector's probabilities of "not about the target" (NaN: no answer).
        """
        scores = blend(encoder, margins, self.weight, self.temperature, multi_label)
        if self.relevance_gate is None:
            return scores
        g = self.relevance_gate
        return gate(scores, encoder, g.threshold, labels.index(g.label), g.source, unrelated)

    def not_about(
        self, encoder: np.ndarray | None, unrelated: np.ndarray | None, labels: list[str]
    ) -> np.ndarray | None:
        """The gate's relevance signal per row: the probability that the text is not about the target.

        The encoder's probability of the neutral label, the detector's
        probability (NaN where it has no answer), or the larger of the two; None
        without a gate. A row is gated where this reaches the threshold.
        """
        g = self.relevance_gate
        if g is None:
            return None
        signals = []
        if g.reads_encoder:
            signals.append(np.asarray(encoder, dtype=np.float64)[:, labels.index(g.label)])
        if g.reads_detector:
            signals.append(np.asarray(unrelated, dtype=np.float64))
        return signals[0] if len(signals) == 1 else np.fmax(*signals)

    def sparse_scores(self, margins: np.ndarray, multi_label: bool) -> np.ndarray:
        """The sparse part's own probabilities (its temperature chosen by dev log-loss)."""
        return blend(None, margins, 0.0, self.sparse_temperature, multi_label)

    def describe(self) -> str:
        """What the rule decides with, in words (model card, evaluation report, ``naba blend``)."""
        how = (
            f"a blend (encoder weight {self.weight:g}, sparse temperature {self.temperature:g})"
            if self.choice == "blend"
            else "the encoder alone"
            if self.choice == "encoder"
            else "the sparse n-gram model alone"
        )
        g = self.relevance_gate
        if g is not None:
            who = {
                "encoder": f"the encoder's '{g.label}'",
                "sparse": "the sparse relevance detector's 'not about the target'",
                "either": f"the encoder's '{g.label}' or the sparse relevance detector's "
                "'not about the target'",
            }[g.source]
            how += (
                f", and where {who} is at least {g.threshold:g}, '{g.label}' (not about the target)"
            )
        return how

    def describe_dev(self) -> str:
        """The rule and its dev scores in one line (train log, ``naba blend``)."""
        f1 = self.dev_macro_f1
        line = (
            f"{self.describe()}; dev macro-F1 encoder {f1.get('encoder', float('nan')):.4f}, "
            f"sparse {f1.get('sparse', float('nan')):.4f}, hybrid {f1.get('hybrid', float('nan')):.4f}"
        )
        if self.relevance_gate is not None:
            g = self.relevance_gate.dev_macro_f1
            if "gated" in g:
                line += (
                    f"; relevance gate: dev macro-F1 with its unrelated pairs {g['ungated']:.4f} "
                    f"without it, {g['gated']:.4f} with it"
                )
            if "real_gated" in g:
                line += f", on the real dev pairs alone {g['real_ungated']:.4f} and {g['real_gated']:.4f}"
        return line

    def summary(self) -> dict:
        """The rule as published by the service and the evaluation report (without the parts' thresholds)."""
        return self.model_dump(exclude={"part_thresholds"})
