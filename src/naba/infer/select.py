"""``naba select``: the unlabelled articles worth labelling next.

Two things make an article worth a label. The model is **unsure** of it:
for a single-label task (stance included) the two most probable labels are
close (margin sampling: ``1 - (p1 - p2)``), for a multi-label task some label
sits near its threshold (``1 - distance``, the distance scaled so that 0 is
the threshold and 1 the far end, 0 or 1). An article's uncertainty is that of
its most uncertain decision (its topics, or its stance toward any target).
And it teaches something the other picks do not: N picks from the top of the
uncertainty ranking are mostly one confusion, seen N times, often in
near-identical copies (the same wire story, a retweet).

:func:`choose` therefore (``diverse``, the default) takes a shortlist of the
most uncertain articles (:data:`SHORTLIST` times ``n``), drops every
near-duplicate of a more uncertain one (cosine similarity of word 1-2-gram
TF-IDF at least :data:`DUPLICATE`), groups what is left into ``n`` clusters
by k-means weighted by uncertainty (on that TF-IDF), and
takes the most uncertain article of each cluster: the weighted k-means
recipe of Zhdanov (2019, "Diverse mini-batch active learning"). ``uncertainty``
(the top ``n``) and ``random`` are there to compare against. Every random
choice (ties, k-means, ``random``) follows ``seed``.

The scores come from a *scorer*: a trained model (:class:`ClassifierScorer`,
what ``naba select`` uses) or the sparse part alone (:class:`SparseScorer`,
seconds to train, for learning-curve studies in ``bench/``); both give
prediction records (:mod:`naba.infer.schema`), so :func:`select_records` is
one function for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from naba.config import NormalizationConfig

Strategy = Literal["diverse", "uncertainty", "random"]
STRATEGIES = ("diverse", "uncertainty", "random")
# Word 1-2-gram TF-IDF cosine from which two articles are one story told twice: on ANT and
# ASND (bench/near_duplicates.py, bench/journal/2026-12-06-selection.md) the pairs read from
# 0.7 up are the same event reworded, a re-share with other hashtags, or a copy; between 0.5
# and 0.7 some still are, others are two stories of one kind (two rounds of a handball league,
# two cartoons), worth a label each.
DUPLICATE = 0.7
SHORTLIST = 10  # the diverse strategy clusters the 10 x n most uncertain articles (Zhdanov's beta)
# k-means runs from this many seeded starts and keeps the tightest: from one start a group can
# be left without a centre of its own while another is split in two.
N_INIT = 5
# k-means reads the n-grams that two or more shortlisted articles share, at most this many
# (the most frequent).
CLUSTER_FEATURES = 20_000


@dataclass(frozen=True)
class TaskRule:
    """How one task decides: its labels, whether several can hold, each label's threshold.

    The thresholds are multi-label's; single-label has none.
    """

    labels: list[str]
    multi_label: bool
    thresholds: dict[str, float] = field(default_factory=dict)


class Scorer(Protocol):
    """What :func:`select_records` needs of a model.

    Its tasks' rules and its prediction records for articles.
    """

    rules: dict[str, TaskRule]
    normalization: NormalizationConfig
    name: str

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """Single-label uncertainty: one minus the gap between the two most probable labels.

    1 is a tie.
    """
    if probabilities.shape[1] < 2:
        return np.zeros(len(probabilities))
    top = -np.sort(-probabilities, axis=1)
    return 1.0 - (top[:, 0] - top[:, 1])


def threshold_uncertainty(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Multi-label uncertainty: one minus the scaled distance of the label nearest its threshold.

    A label at its threshold gives 1; at 0 (below) or 1 (above) it gives 0.
    The distance is divided by the room on that side of the threshold, so a
    label with a threshold of 0.2 at 0.1 is as near as one at 0.6 with a
    threshold of 0.8.
    """
    if not probabilities.size:
        return np.zeros(len(probabilities))
    room = np.where(probabilities < thresholds, thresholds, 1.0 - thresholds)
    distance = np.abs(probabilities - thresholds) / np.clip(room, 1e-6, None)
    return 1.0 - np.clip(distance, 0.0, 1.0).min(axis=1)


def uncertainties(predictions: list[dict[str, Any]], rules: dict[str, TaskRule]) -> np.ndarray:
    """Each prediction record's uncertainty: that of its most uncertain decision.

    The decisions are the topics and each stance entry.
    """
    out = np.zeros(len(predictions))
    if "topic" in rules:
        rule = rules["topic"]
        rows = [i for i, p in enumerate(predictions) if "topics" in p]
        scores = np.array(
            [[predictions[i]["topics"]["scores"][label] for label in rule.labels] for i in rows]
        ).reshape(len(rows), len(rule.labels))
        if rule.multi_label:
            limits = np.array([rule.thresholds.get(label, 0.5) for label in rule.labels])
            out[rows] = threshold_uncertainty(scores, limits)
        else:
            out[rows] = margin_uncertainty(scores)
    if "stance" in rules:
        labels = rules["stance"].labels
        pairs = [(i, s) for i, p in enumerate(predictions) for s in p.get("stance") or ()]
        scores = np.array([[s["scores"][label] for label in labels] for _, s in pairs])
        for (i, _), u in zip(pairs, margin_uncertainty(scores.reshape(len(pairs), len(labels)))):
            out[i] = max(out[i], u)
    return out


def text_space(
    records: Sequence[dict[str, Any]], normalization: NormalizationConfig | None = None
) -> Any:
    """The articles as L2-normalised word 1-2-gram TF-IDF rows.

    Each row reads the title, the text and, for stance, the target.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    from naba.encoding import document_text

    norm = normalization or NormalizationConfig()
    texts = [
        " ".join(filter(None, [r.get("target"), document_text(r, norm)]))
        if isinstance(r.get("target"), str)
        else document_text(r, norm)
        for r in records
    ]
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32).fit_transform(
        texts
    )


def drop_duplicates(space: Any, order: np.ndarray, keep: int, similarity: float) -> list[int]:
    """The first ``keep`` rows of ``order`` that are no near-duplicate of an earlier kept row.

    A near-duplicate has a cosine of at least ``similarity``.

    Rows are compared a block at a time, against what was kept and within the block.
    """
    kept: list[int] = []
    block = 256
    for start in range(0, len(order), block):
        rows = [int(i) for i in order[start : start + block]]
        against = (
            (space[rows] @ space[kept].T).toarray()
            if kept
            else np.zeros((len(rows), 0), dtype=np.float32)
        )
        inside = (space[rows] @ space[rows].T).toarray()
        taken: list[int] = []  # positions in rows
        for a, row in enumerate(rows):
            if (against[a] >= similarity).any() or any(inside[a, b] >= similarity for b in taken):
                continue
            taken.append(a)
            kept.append(row)
            if len(kept) == keep:
                return kept
    return kept


def ranked(uncertainty: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices from the most to the least uncertain; equal ones in a random (seeded) order."""
    return np.lexsort((rng.permutation(len(uncertainty)), -uncertainty))


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` picked: indices into the pool, most uncertain first.

    The diverse strategy also gives each one's cluster.
    """

    indices: list[int]
    clusters: list[int] | None = None


def choose(
    uncertainty: np.ndarray,
    records: Sequence[dict[str, Any]],
    n: int,
    *,
    strategy: Strategy = "diverse",
    seed: int = 0,
    similarity: float = DUPLICATE,
    normalization: NormalizationConfig | None = None,
) -> Choice:
    """Pick ``n`` of the pool's articles (fewer when the pool holds fewer distinct ones).

    Args:
        uncertainty: One value per record (:func:`uncertainties`), higher is more worth a label.
        records: The pool's articles (``text``, optional ``title`` and ``target``).
        strategy: ``diverse`` (see the module docstring), ``uncertainty`` (the top ``n``)
            or ``random``.
        similarity: Cosine from which two articles are near-duplicates (``diverse``).

    Raises:
        ValueError: ``n`` below 1, an unknown strategy, or uncertainties and records of
            different lengths.
    """
    if n < 1:
        raise ValueError(f"n: expected at least 1 article to select, found {n}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, found {strategy!r}")
    if len(uncertainty) != len(records):
        raise ValueError(f"{len(uncertainty)} uncertainties for {len(records)} records")
    rng = np.random.default_rng(seed)
    order = ranked(np.asarray(uncertainty, dtype=np.float64), rng)
    if strategy == "random":
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        picks = rng.permutation(len(records))[:n]
        return Choice(sorted(picks.tolist(), key=lambda i: rank[i]))
    if strategy == "uncertainty" or not len(records):
        return Choice(order[:n].tolist())
    shortlist = order[: SHORTLIST * n * 3 // 2]  # room for the near-duplicates dropped
    try:
        space = text_space([records[i] for i in shortlist], normalization)
    except (
        ValueError
    ):  # not one word among them (emoji, punctuation): nothing to tell them apart by
        return Choice(order[:n].tolist())
    kept = drop_duplicates(space, np.arange(len(shortlist)), SHORTLIST * n, similarity)
    if len(kept) <= n:
        return Choice([int(shortlist[i]) for i in kept], list(range(len(kept))))
    clusters = _clusters(space[kept], uncertainty[shortlist[kept]], n, seed)
    best: dict[int, int] = {}
    for position, cluster in enumerate(
        clusters
    ):  # kept is in uncertainty order: the first is the best
        best.setdefault(int(cluster), position)
    picks = sorted(best.values())[:n]
    return Choice([int(shortlist[kept[p]]) for p in picks], [int(clusters[p]) for p in picks])


def _clusters(space: Any, weights: np.ndarray, n: int, seed: int) -> np.ndarray:
    """k-means of the rows into ``n`` clusters, each row weighted by its uncertainty.

    On the TF-IDF itself, cut to the n-grams two or more of the rows share
    (what clusters have in common; at most :data:`CLUSTER_FEATURES`, the most
    frequent), rows L2-normalised. (A truncated SVD first was slower than the
    k-means it fed: its dense factors are as wide as the vocabulary.)
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    frequency = np.asarray((space > 0).sum(axis=0)).ravel()
    shared = np.flatnonzero(frequency >= 2)
    columns = np.sort(shared[np.argsort(-frequency[shared], kind="stable")[:CLUSTER_FEATURES]])
    points = normalize(space[:, columns]) if len(columns) >= 2 else space
    model = KMeans(n_clusters=n, n_init=N_INIT, random_state=seed)
    return model.fit_predict(points, sample_weight=np.clip(weights, 1e-3, None))


@dataclass
class Selection:
    """The articles chosen, most uncertain first (the order to label them), with predictions."""

    records: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    uncertainty: list[float]
    clusters: list[int] | None
    pool: int  # articles scored
    rules: dict[str, TaskRule]
    model: str


def select_records(
    records: list[dict[str, Any]],
    scorer: Scorer,
    n: int,
    *,
    strategy: Strategy = "diverse",
    seed: int = 0,
    similarity: float = DUPLICATE,
    batch: int = 256,
    progress: Any = None,
) -> Selection:
    """Score a pool of articles with ``scorer`` and choose ``n`` of them to label (:func:`choose`).

    ``naba select`` calls this on the pool it read; ``bench/selection.py``
    calls it with a :class:`SparseScorer` round after round.

    Args:
        batch: Articles scored at a time (``progress``, a bar, advances by each batch).
    """
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        predictions += scorer.predict(chunk)
        if progress is not None:
            progress.update(len(chunk))
    uncertainty = uncertainties(predictions, scorer.rules)
    picked = choose(
        uncertainty,
        records,
        n,
        strategy=strategy,
        seed=seed,
        similarity=similarity,
        normalization=scorer.normalization,
    )
    return Selection(
        records=[records[i] for i in picked.indices],
        predictions=[predictions[i] for i in picked.indices],
        uncertainty=[round(float(uncertainty[i]), 6) for i in picked.indices],
        clusters=picked.clusters,
        pool=len(records),
        rules=scorer.rules,
        model=scorer.name,
    )


class ClassifierScorer:
    """A trained model as a scorer: :meth:`Classifier.predict` on each article.

    Stance is scored toward each article's own target.
    """

    def __init__(
        self, classifier: Any, tasks: Sequence[str] | str | None = None, batch_size: int = 32
    ):
        self.classifier, self.batch_size = classifier, batch_size
        self.tasks = classifier.selected_tasks(tasks)
        self.rules = {
            name: TaskRule(list(spec.labels), bool(spec.multi_label), dict(spec.thresholds or {}))
            for name, spec in ((t, classifier.tasks[t].spec) for t in self.tasks)
        }
        if "stance" in self.rules:
            self.rules["stance"] = TaskRule(self.rules["stance"].labels, False)
        self.normalization = classifier.manifest.normalization
        self.name = classifier.model_dir.name

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.tasks == ["stance"] and not any(r.get("target") for r in records):
            return [{"id": r["id"]} if "id" in r else {} for r in records]
        return self.classifier.predict(records, tasks=self.tasks, batch_size=self.batch_size)


class SparseScorer:
    """The sparse part alone as a scorer (:class:`naba.sparse.SparseModel` per task).

    Margins become probabilities as in a hybrid model's sparse part
    (:func:`naba.blend.probabilities` at ``temperature``); multi-label thresholds are
    0.5 (a margin of 0), the sparse model's own decision.
    """

    def __init__(self, models: dict[str, Any], temperature: float = 1.0, name: str = "sparse"):
        self.models, self.temperature, self.name = models, temperature, name
        self.rules = {
            task: TaskRule(list(m.labels), bool(m.multi_label) and task == "topic")
            for task, m in models.items()
        }
        self.normalization = next(iter(models.values())).normalization

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from naba.blend import probabilities
        from naba.decision import decide

        out = [{"id": r["id"]} if "id" in r else {} for r in records]
        for task, model in self.models.items():
            rows = [i for i, r in enumerate(records) if task == "topic" or r.get("target")]
            if not rows:
                continue
            rule = self.rules[task]
            margins = model.margins([records[i] for i in rows])
            scores = probabilities(margins, self.temperature, rule.multi_label)
            for i, labels, row in zip(rows, decide(scores, rule.labels, rule.multi_label), scores):
                rounded = {label: round(float(p), 6) for label, p in zip(rule.labels, row)}
                if task == "topic":
                    out[i]["topics"] = {"labels": labels, "scores": rounded}
                else:
                    entry = {"target": records[i]["target"], "label": labels[0], "scores": rounded}
                    out[i]["stance"] = [entry]
        return out
