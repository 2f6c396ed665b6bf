"""The request and response bodies of the service, as pydantic models (they make its OpenAPI
schema).

The request model is built per app (:func:`request_model`), with the app's
limits baked in: its messages name the article index and the limit.
"""

# No ``from __future__ import annotations`` here: pydantic resolves the annotations of the
# request model, a class local to request_model, at runtime.

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator
from pydantic_core import PydanticCustomError

from naba.infer.schema import Prediction


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _article_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "record"
    return None


class ArticleIn(BaseModel):
    """One article as a record. Other fields (a canonical JSONL row's labels, date, url) are
    ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str | int | None = Field(default=None, description="Echoed in the result.")
    title: str | None = None
    text: str
    target: str | None = Field(
        default=None, description="Stance target for this article (when `targets` is not given)."
    )

    def as_article(self) -> dict[str, Any]:
        """The record :meth:`Classifier.predict` takes (which echoes its ``id`` in the result)."""
        record: dict[str, Any] = {} if self.id is None else {"id": self.id}
        record["text"] = self.text
        if self.title is not None:
            record["title"] = self.title
        if self.target is not None:
            record["target"] = self.target
        return record


ArticleItem = Annotated[
    Annotated[str, Tag("string")] | Annotated[ArticleIn, Tag("record")],
    Discriminator(
        _article_tag,
        custom_error_type="article_type",
        custom_error_message="expected a string or an object with a 'text' string",
    ),
]


def blank_text(text: str) -> str | None:
    """Why a text cannot be classified (empty, whitespace or invisible only), in the words of ``naba
    predict``; None if it can."""
    from naba.data.records import FieldError, required_text

    try:
        required_text({"text": text}, "text")
    except FieldError as exc:
        return exc.message
    return None


REQUEST_EXAMPLE = {
    "articles": [
        "ارتفعت أسعار النفط بعد قرار أوبك خفض الإنتاج",
        {
            "id": "a-2",
            "title": "قمة عربية في الرياض",
            "text": "...",
            "target": "العمل عن بعد",
        },
    ]
}


def request_model(max_articles: int, max_chars: int, max_targets: int) -> type[BaseModel]:
    """The request body model with an app's limits baked in (messages name the limit).

    Args:
        max_articles: Most articles in one request (``max_batch_size``).
        max_chars: Most characters in one text, title or target (``max_text_chars``).
        max_targets: Most stance targets in one request (``max_targets``).
    """

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [REQUEST_EXAMPLE]})

        articles: list[ArticleItem] = Field(
            description=f"1 to {max_articles} articles: strings, or records with `text` and "
            f"optional `id`, `title`, `target`; each text at most {max_chars} characters."
        )
        targets: list[str] | None = Field(
            default=None,
            description=f"Stance targets to score every article against (at most {max_targets}). "
            "Without them, stance is scored only toward each record's own `target`, or "
            "with `all_targets`; an article with no target gets no `stance`.",
        )
        all_targets: bool = Field(
            default=False,
            description="Score stance toward every target the model was trained "
            "on (`default_targets` in GET /v1/model).",
        )
        tasks: list[Literal["topic", "stance"]] | None = Field(
            default=None,
            min_length=1,
            description="The tasks to run (default: every task of the model).",
        )
        threshold: float | None = Field(
            default=None, ge=0.0, le=1.0, description="Overrides every tuned topic threshold."
        )
        explain: int = Field(
            default=0,
            ge=0,
            le=50,
            description="Give each chosen topic label and each stance entry `evidence`: the K "
            "words or phrases of the article that weigh most for it in the sparse part, as spans "
            "of the original title or text. 0: none.",
        )

        @field_validator("articles", mode="before")
        @classmethod
        def _count(cls, value: Any) -> Any:
            return _check_article_count(value, max_articles)

        @field_validator("articles")
        @classmethod
        def _texts(cls, value: list[Any]) -> list[Any]:
            for i, article in enumerate(value):
                _check_article_texts(i, article, max_chars)
            return value

        @field_validator("targets", mode="before")
        @classmethod
        def _count_targets(cls, value: Any) -> Any:
            if isinstance(value, list) and len(value) > max_targets:
                raise PydanticCustomError(
                    "too_many_targets",
                    "targets: {found} targets, the limit is {limit} per request",
                    {"found": len(value), "limit": max_targets},
                )
            return value

        @field_validator("targets")
        @classmethod
        def _targets(cls, value: list[str] | None) -> list[str] | None:
            for i, target in enumerate(value or []):
                _check_target(i, target, max_chars)
            return value

    return ClassifyRequest


def _check_article_count(value: Any, max_articles: int) -> Any:
    """Before item validation: a request of a million articles is refused without validating
    them."""
    if isinstance(value, list):
        if not value:
            raise PydanticCustomError(
                "articles_empty", "articles: empty; send at least one article"
            )
        if len(value) > max_articles:
            raise PydanticCustomError(
                "too_many_articles",
                "articles: {found} articles, the limit is {limit} per request (max_batch_size); "
                "split them over several requests",
                {"found": len(value), "limit": max_articles},
            )
    return value


def _check_article_texts(index: int, article: "str | ArticleIn", max_chars: int) -> None:
    """Article ``index``'s text is not blank; its strings are short enough and encodable."""
    fields = (
        {"text": article}
        if isinstance(article, str)
        else {
            "id": article.id if isinstance(article.id, str) else None,
            "title": article.title,
            "text": article.text,
            "target": article.target,
        }
    )
    blank = blank_text(fields["text"])
    if blank:
        raise PydanticCustomError(
            "empty_text",
            "article {index}: text: {reason}",
            {"index": index, "reason": blank},
        )
    for name, text in fields.items():
        if text is None:
            continue
        if len(text) > max_chars and name != "id":
            raise PydanticCustomError(
                "text_too_long",
                "article {index}: {field} is {found} characters, the limit is {limit} "
                "(max_text_chars); shorten the article or split it",
                {"index": index, "field": name, "found": len(text), "limit": max_chars},
            )
        if _has_surrogates(text):
            raise PydanticCustomError(
                "invalid_text",
                "article {index}: {field} contains a lone surrogate (invalid Unicode); "
                "send UTF-8 text",
                {"index": index, "field": name},
            )


def _check_target(index: int, target: str, max_chars: int) -> None:
    """Request target ``index`` is short enough and encodable."""
    if len(target) > max_chars:
        raise PydanticCustomError(
            "text_too_long",
            "targets[{index}]: {found} characters, the limit is {limit} (max_text_chars)",
            {"index": index, "found": len(target), "limit": max_chars},
        )
    if _has_surrogates(target):
        raise PydanticCustomError(
            "invalid_text",
            "targets[{index}]: contains a lone surrogate (invalid Unicode); send UTF-8 text",
            {"index": index},
        )


class ModelStamp(BaseModel):
    format_version: int
    naba_version: str


class ClassifyResponse(BaseModel):
    results: list[Prediction] = Field(
        description="One prediction record per article, in input order: the records of "
        "the Python API and `naba predict` (GET /v1/schema)."
    )
    model: ModelStamp


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ErrorItem]
    request_id: str | None = Field(default=None, description="The X-Request-ID of the request.")


class ErrorBody(BaseModel):
    detail: str
    request_id: str | None = Field(default=None, description="The X-Request-ID of the request.")
