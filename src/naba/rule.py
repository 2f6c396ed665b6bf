"""A hybrid task's decision rule, typed: what ``naba.json`` records under a task's ``hybrid``.

The rule says which part decides (the encoder, the sparse n-gram part, or a
blend of both by one number, ``blend_lambda``) and, for stance, the relevance
gate: where one relevance signal (the probability that the text is not about
the target) reaches the gate's threshold, the neutral label. Training chooses
the rule on dev (:mod:`naba.train.hybrid`, :mod:`naba.blend`); every door
applies it through :meth:`HybridRule.scores`. The models forbid unknown keys:
a model directory whose rule has a misspelt or newer key is refused on load
(:func:`naba.manifest.read_manifest`) instead of deciding differently.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from naba.blend import decision_logits, gate, probabilities

Part = Literal["encoder", "sparse", "blend"]
GateSource = Literal["encoder", "detector"]


class RelevanceGate(BaseModel):
    """Stance: where the relevance signal of ``source`` reaches ``threshold``, label ``label``.

    ``source``: the encoder (its probability of ``label``) or the sparse
    relevance detector (its probability of "not about the target").
    """

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="The neutral label: what a text not about the target gets.")
    source: GateSource = Field(description="Who gives the relevance signal: encoder or detector.")
    threshold: float = Field(
        ge=0.5, le=1.0, description="The signal from which the neutral label stands."
    )
    dev_macro_f1: dict[str, float] = Field(
        default_factory=dict,
        description="Dev macro-F1 with its unrelated pairs, without and with the gate "
        "(ungated, gated; real_ungated, real_gated on the real pairs alone).",
    )


class HybridRule(BaseModel):
    """Which part decides, and how (a task's ``hybrid`` in ``naba.json``).

    The scores are ``softmax((e + lambda x m) / T)`` (``sigmoid`` for
    multi-label): ``e`` the encoder's log-probabilities (multi-label: logits),
    ``m`` the sparse part's margins, ``lambda`` = ``blend_lambda`` (0: the
    encoder alone; the sparse part alone is ``m / T``), ``T`` = ``temperature``,
    a calibration that never changes a label. Then the relevance gate.
    """

    model_config = ConfigDict(extra="forbid")

    choice: Part = Field(description="The part that decides: encoder, sparse or blend.")
    blend_lambda: float | None = Field(
        ge=0.0,
        description="The sparse margins' weight beside the encoder's log-probabilities "
        "(0: the encoder alone; null: the sparse part alone).",
    )
    temperature: float = Field(
        gt=0.0,
        description="Divides the decision's logits: its calibration, chosen by dev log-loss.",
    )
    sparse_temperature: float = Field(
        gt=0.0, description="The sparse part's own calibration on dev (its probabilities)."
    )
    dev_macro_f1: dict[str, float] = Field(
        default_factory=dict,
        description="Dev macro-F1 of the encoder, the sparse part, their equal blend and the "
        "rule (hybrid).",
    )
    path: str = Field(
        default="sparse", description="The sparse part's directory, inside the task's."
    )
    relevance_gate: RelevanceGate | None = Field(
        default=None, description="Stance: the relevance gate; none when dev kept no gate."
    )
    chosen_on: str | None = Field(
        default=None,
        description="What the rule was chosen on, and why: the equal blend or the departure taken.",
    )
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
            self.relevance_gate and self.relevance_gate.source == "encoder"
        )

    @property
    def reads_detector(self) -> bool:
        """Whether a decision needs the sparse relevance detector's probabilities."""
        return bool(self.relevance_gate and self.relevance_gate.source == "detector")

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
        if self.choice == "encoder":
            scores = encoder.astype(np.float32)  # the encoder's own probabilities, as HF gives them
        else:
            logits = decision_logits(encoder, margins, self.blend_lambda, multi_label)
            scores = probabilities(logits, self.temperature, multi_label)
        g = self.relevance_gate
        if g is None:
            return scores
        signal = self.not_about(encoder, unrelated, labels)
        return gate(scores, signal, g.threshold, labels.index(g.label))

    def not_about(
        self, encoder: np.ndarray | None, unrelated: np.ndarray | None, labels: list[str]
    ) -> np.ndarray | None:
        """The gate's relevance signal per row: the probability the text is not about the target.

        The encoder's probability of the neutral label, or the detector's
        probability (NaN where it has no answer); None without a gate. A row is
        gated where this reaches the threshold.
        """
        g = self.relevance_gate
        if g is None:
            return None
        if g.source == "encoder":
            return np.asarray(encoder, dtype=np.float64)[:, labels.index(g.label)]
        return np.asarray(unrelated, dtype=np.float64)

    def sparse_scores(self, margins: np.ndarray, multi_label: bool) -> np.ndarray:
        """The sparse part's own probabilities (its temperature chosen by dev log-loss)."""
        return probabilities(margins.astype(np.float64), self.sparse_temperature, multi_label)

    def describe(self) -> str:
        """What the rule decides with, in words (model card, evaluation report, ``naba blend``)."""
        if self.choice == "blend":
            how = (
                f"a blend (the sparse margins weighted {self.blend_lambda:g} beside the encoder's "
                "log-probabilities)"
            )
        else:
            how = {"encoder": "the encoder alone", "sparse": "the sparse n-gram model alone"}[
                self.choice
            ]
        g = self.relevance_gate
        if g is not None:
            who = {
                "encoder": f"the encoder's '{g.label}'",
                "detector": "the sparse relevance detector's 'not about the target'",
            }[g.source]
            how += (
                f", and where {who} is at least {g.threshold:g}, '{g.label}' (not about the target)"
            )
        return how

    def describe_dev(self) -> str:
        """The rule and its dev scores in one line (train log, ``naba blend``)."""
        f1 = {k: self.dev_macro_f1.get(k, float("nan")) for k in ("encoder", "sparse", "hybrid")}
        equal = self.dev_macro_f1.get("equal")
        line = (
            f"{self.describe()}; dev macro-F1 encoder {f1['encoder']:.4f}, sparse "
            f"{f1['sparse']:.4f}, "
            + (f"equal blend {equal:.4f}, " if equal is not None else "")
            + f"hybrid {f1['hybrid']:.4f}"
        )
        g = self.relevance_gate
        if g is not None and "gated" in g.dev_macro_f1:
            d = g.dev_macro_f1
            line += (
                f"; relevance gate: dev macro-F1 with its unrelated pairs {d['ungated']:.4f} "
                f"without it, {d['gated']:.4f} with it, on the real dev pairs alone "
                f"{d['real_ungated']:.4f} and {d['real_gated']:.4f}"
            )
        return line

    def summary(self) -> dict:
        """The rule as the service and the evaluation report publish it (no parts' thresholds)."""
        return self.model_dump(exclude={"part_thresholds"})
