"""The docs: a short README, reference pages generated from the code, a site that builds offline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "docs"))
import gen_ref  # noqa: E402

sys.path.remove(str(ROOT / "docs"))


def config_keys(model, prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        sub = gen_ref._submodel(info.annotation)
        keys.append(prefix + name)
        if sub is not None:
            keys += config_keys(sub, f"{prefix}{name}.")
    return keys


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reference")
    return {p.name: p.read_text(encoding="utf-8") for p in gen_ref.generate(out)}


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), f"README.md links to {link}, which does not exist"


def test_cli_reference_has_every_command_and_option(pages) -> None:
    import typer

    from naba.cli import app

    page = pages["cli.md"]
    for path, command in gen_ref._commands(typer.main.get_command(app), ["naba"]):
        assert f"`{' '.join(path)}`" in page
        for param in command.params:
            if param.name != "help" and param.opts:
                assert f"`{param.opts[0]}" in page or param.human_readable_name in page


def test_config_reference_has_every_key(pages) -> None:
    from naba.config import NabaConfig
    from naba.pretrain_config import PretrainConfig

    page = pages["config.md"]
    for key in config_keys(NabaConfig) + config_keys(PretrainConfig):
        assert f"| `{key}` |" in page, key
    assert "| `model.window.length` | `int` | `256` |" in page


def test_model_directory_reference_lists_the_manifest(pages) -> None:
    from naba.manifest import Manifest, TaskManifest

    page = pages["model-directory.md"]
    for name in [*Manifest.model_fields, *TaskManifest.model_fields]:
        assert f"| `{name}` |" in page


@pytest.mark.slow
def test_site_builds_strict_and_offline(tmp_path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    external = []
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        external += [
            f"{page.name}: {m}"
            for m in re.findall(r"<(?:script|link|img)[^>]*(?:src|href)=\"(https?://[^\"]+)", html)
        ]
    assert not external, external
    assert "label_separator" in (site / "index.html").read_text(
        encoding="utf-8"
    )  # the walk-through
    assert (site / "reference" / "cli.html").exists()
    assert Path(site / "benchmarks.html").exists()
