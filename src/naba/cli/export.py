"""``naba export``: a trained model in another runtime's format (``naba export onnx``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import ThreadsOption, app, err, quiet_libraries, user_errors

export_app = typer.Typer(
    help="Export a trained model for another runtime: ONNX Runtime.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(export_app, name="export")


def _dev_files(items: list[str]) -> dict[str, Path]:
    """``--dev topic=FILE`` options as ``{"topic": Path}``.

    Raises:
        NabaError: not ``TASK=FILE``, an unknown task or a missing file.
    """
    from naba.errors import NabaError

    out = {}
    for item in items:
        task, sep, file = item.partition("=")
        if not sep or task not in ("topic", "stance"):
            raise NabaError(f"--dev {item!r}: expected TASK=FILE with TASK topic or stance")
        if not Path(file).is_file():
            raise NabaError(f"--dev {item!r}: {file} not found")
        out[task] = Path(file)
    return out


@export_app.command("onnx")
def export_onnx_command(
    model: Annotated[
        Path, typer.Argument(help="Model directory written by `naba train` or `naba distill`.")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The exported model directory (the model plus its ONNX files)."
        ),
    ],
    dev: Annotated[
        list[str] | None,
        typer.Option(
            help="TASK=FILE: the dev split to check the export against torch on "
            "(default: the dev split the model was trained with, where it exists; repeatable).",
        ),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            help="Also write an int8 variant (ONNX Runtime dynamic quantisation), kept where its "
            "labels agree with torch fp32 on at least 99% of dev."
        ),
    ] = True,
    max_dev: Annotated[
        int | None, typer.Option(min=1, help="Check on at most this many dev articles.")
    ] = None,
    threads: ThreadsOption = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
) -> None:
    """Export each task's encoder and head as ONNX (fp32, and int8 where it keeps labels).

    The output is a complete model directory: `naba predict DIR --runtime onnx`
    runs it under ONNX Runtime, `--runtime torch` as before.
    """
    with user_errors():
        quiet_libraries()
        from naba.infer.onnx_export import ExportSettings, export_onnx
        from naba.manifest import read_manifest

        settings = ExportSettings(
            dev=_dev_files(dev or []), int8=int8, max_dev=max_dev, threads=threads
        )
        out = export_onnx(model, output, settings, overwrite=overwrite)
        for name, spec in read_manifest(out).tasks.items():
            onnx, agreement = spec.onnx or {}, spec.precision_agreement
            checked = ", ".join(
                f"{variant} agrees with torch fp32 on {100 * agreement[variant]:.1f}% of dev"
                for variant in ("onnx-fp32", "onnx-int8")
                if variant in agreement
            )
            kept = "fp32 + int8" if onnx.get("int8") else "fp32"
            typer.echo(f"{name}: {kept}" + (f" ({checked})" if checked else ""))
            if onnx.get("int8_note"):
                err(f"note: {name}: no int8 variant: {onnx['int8_note']}")
    typer.echo(f"wrote {out}")
