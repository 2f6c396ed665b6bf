"""Domain errors. Each subclasses ValueError and reads as one line for a user."""

from __future__ import annotations

from dataclasses import dataclass


class NabaError(ValueError):
    """Base class: the CLI prints the message on stderr and exits with :attr:`exit_code`."""

    exit_code = 2


class InputError(NabaError):
    """A file cannot be used at all (missing, a directory, unknown format, unreadable)."""


class ModelDirError(NabaError):
    """A model directory is missing, incomplete, corrupt or from a newer naba."""


@dataclass(frozen=True)
class Problem:
    """One problem in one input row: ``FILE:LINE: field: message``."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "field": self.field, "error": self.message}
