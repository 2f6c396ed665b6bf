"""Weak topic labels from a taxonomy of Arabic tag phrases.

A taxonomy maps each topic to phrases (``الطاقة النووية``, ``حلف شمال
الأطلسي``...). Tag lines are space-separated runs of multi-word tags, so
matching works on token sequences of normalised text, never on split words:
the longest phrase wins at each position, so ``الأمن السيبراني``
(technology) is not also read as ``الأمن``. A phrase's first word may carry
the proclitics و ف ب ل ك and the article ال (``والنفط``, ``للنفط``).

An article's tags are matched when it has a tag line; otherwise its title,
and its lead paragraph when ``match.lead`` is on. Every assigned topic
records the rule (field) and phrase that assigned it, so weak labels can be
audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naba.config_loading import ConfigError, format_validation_error
from naba.text import normalize

_CLITICS = ("", "و", "ف", "ب", "ل", "ك", "وب", "ول", "وك", "فب", "فل", "فك")
_NON_WORD = re.compile(r"[^\w\s]|_")


EXAMPLE = "example"  # --taxonomy example: the taxonomy packaged with naba (configs/taxonomy.yaml)


def example_taxonomy() -> Path:
    """The example news taxonomy (eight topics), packaged with naba so it works outside the
    repository."""
    from importlib.resources import files

    return Path(str(files("naba") / "resources" / "taxonomy.yaml"))


class TaxonomyMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lead: Literal["never", "fallback", "always"] = "fallback"
    lead_words: int = Field(default=40, ge=1)


class TaxonomyFile(BaseModel):
    """A taxonomy file (``configs/taxonomy.yaml``): ``topics: {name: [phrase, ...]}`` and matching
    options."""

    model_config = ConfigDict(extra="forbid")
    match: TaxonomyMatch = TaxonomyMatch()
    topics: dict[str, list[str]] = Field(min_length=1)


def _fold(text: str) -> list[str]:
    """Tokens of text normalised for matching (letter variants folded, punctuation dropped)."""
    from naba.text import folding_config

    return _NON_WORD.sub(" ", normalize(text, folding_config())).split()


def _first_forms(word: str) -> set[str]:
    forms = {clitic + word for clitic in _CLITICS}
    if word.startswith("ال") and len(word) > 2:
        # ل + ال drops the alef: للنفط, وللنفط, فللنفط.
        forms |= {prefix + "ل" + word[2:] for prefix in ("ل", "ول", "فل")}
    else:
        forms |= {clitic + "ال" + word for clitic in _CLITICS}
        forms |= {prefix + "ل" + word for prefix in ("ل", "ول", "فل")}
    return forms


@dataclass
class Taxonomy:
    """A compiled taxonomy. Build with :meth:`load` or :meth:`from_dict`."""

    topics: dict[str, list[str]]
    lead: str = "fallback"
    lead_words: int = 40
    _index: dict[str, list[tuple[tuple[str, ...], str, str]]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        for topic, phrases in self.topics.items():
            for phrase in phrases:
                tokens = tuple(_fold(phrase))
                if not tokens:
                    continue
                for form in _first_forms(tokens[0]):
                    self._index.setdefault(form, []).append((tokens, topic, phrase))
        for entries in self._index.values():
            entries.sort(key=lambda entry: -len(entry[0]))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "taxonomy") -> Taxonomy:
        try:
            parsed = TaxonomyFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, TaxonomyFile)) from None
        return cls(topics=parsed.topics, lead=parsed.match.lead, lead_words=parsed.match.lead_words)

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read a taxonomy YAML file; ``example`` is the news taxonomy that ships with naba.

        Raises:
            ConfigError: missing file, invalid YAML or schema; names the file and key.
        """
        path = Path(path)
        if str(path) == EXAMPLE and not path.exists():
            path = example_taxonomy()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: taxonomy file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with a 'topics' section")
        return cls.from_dict(data, str(path))

    def match_text(self, text: str) -> list[tuple[str, str]]:
        """``(topic, phrase)`` for each non-overlapping phrase found, longest first at each
        position."""
        tokens = _fold(text)
        found: list[tuple[str, str]] = []
        position = 0
        while position < len(tokens):
            step = 1
            for phrase_tokens, topic, phrase in self._index.get(tokens[position], ()):
                end = position + len(phrase_tokens)
                if tuple(tokens[position + 1 : end]) == phrase_tokens[1:]:
                    found.append((topic, phrase))
                    step = len(phrase_tokens)
                    break
            position += step
        return found

    def assign(self, article: dict[str, Any]) -> tuple[list[str], list[dict[str, str]]]:
        """Topics for an article and the evidence for each: ``{topic, rule, phrase}``."""
        if article.get("tags"):
            fields = [("tags", str(article["tags"]))]
        else:
            fields = [("title", str(article.get("title") or ""))]
            if self.lead != "never":
                lead = str(article.get("text") or "").split("\n", 1)[0]
                fields.append(("lead", " ".join(lead.split()[: self.lead_words])))
        evidence: list[dict[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for rule, text in fields:
            if rule == "lead" and self.lead == "fallback" and evidence:
                break
            for topic, phrase in self.match_text(text):
                if (topic, phrase) not in seen:
                    seen.add((topic, phrase))
                    evidence.append({"topic": topic, "rule": rule, "phrase": phrase})
        topics = [t for t in self.topics if any(e["topic"] == t for e in evidence)]
        return topics, evidence
