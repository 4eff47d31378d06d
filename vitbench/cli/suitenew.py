"""``vitbench suite new``: a suite YAML from model names and patterns, without measuring."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import app, fail, parse_image_size
from vitbench.cli.scale import REFERENCES_COLUMNS_HELP, REFERENCES_HELP, with_references
from vitbench.errors import VitbenchError

suite_app = typer.Typer(help="Write suite files.", no_args_is_help=True)
app.add_typer(suite_app, name="suite")


@suite_app.command("new")
def suite_new(
    model: list[str] = typer.Option(..., "--model", "-m", metavar="NAME", help="a model (zoo:name, a bare name meaning timm) or a pattern such as 'timm:vit_*' (every match, sorted); repeatable"),
    image_size: Optional[str] = typer.Option(None, "--image-size", metavar="N|HxW", help="one input size for every row [default: each model's own, from its zoo]"),
    references: Optional[Path] = typer.Option(None, "--references", metavar="CSV", help=REFERENCES_HELP),
    references_columns: Optional[str] = typer.Option(None, "--references-columns", metavar="MAP", help=REFERENCES_COLUMNS_HELP),
    name: str = typer.Option("models", "--name", metavar="NAME", help="the suite's name (its results go to results/NAME/)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="write the suite to FILE instead of stdout"),
    force: bool = typer.Option(False, "--force", help="--out may replace an existing file"),
) -> None:
    """Print a suite YAML with one row per model, patterns expanded, each row at its
    model's default input size (timm's) unless --image-size; with --references, each row's
    printed params/GFLOPs from a results CSV. Nothing is built or measured. Exit 2 on an
    unknown model, a pattern that matches nothing (with patterns that do), a bad CSV.

    Examples:

    \b
      vitbench suite new --model 'timm:vit_*' --model 'timm:pvt_v2_*' > vits.yaml
      vitbench suite new -m 'timm:convnext_*' --references \\
          benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv -o convnexts.yaml
    """
    from pydantic import ValidationError

    from vitbench.cli.console import err
    from vitbench.cli.run import models_suite
    from vitbench.config.adhoc import suite_yaml
    from vitbench.config.spec import Suite
    from vitbench.files import write_atomic
    from vitbench.run.runner import check_models, plan

    if out is not None and out.exists() and not force:
        raise fail(f"--out {out} exists: choose another file, or add --force to replace it")
    overrides = {"image_size": parse_image_size(image_size)} if image_size else {}
    try:
        suite = models_suite(model, overrides)
        try:
            suite = Suite.model_validate({**suite.model_dump(), "name": name})
        except ValidationError:
            raise VitbenchError(f"--name {name!r}: letters, digits, '.', '_' and '-' only, "
                                f"starting with a letter or digit") from None
        suite, summary = with_references(suite, references, references_columns, overrides)
        check_models(plan(suite, overrides))
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    suite = suite.model_copy(update={"defaults": suite.defaults.model_copy(update=overrides)})
    command = shlex.join(["vitbench", *sys.argv[1:]]).replace("\n", " ")
    text = f"# {command}\n{suite_yaml(suite)}"
    if summary:
        err.print(summary, highlight=False, markup=False, soft_wrap=True)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        write_atomic(out, text)
    except VitbenchError as exc:  # DiskError: cannot write FILE: CAUSE (exit 4)
        raise fail(str(exc), exc.exit_code) from None
    err.print(f"wrote {out}: {len(suite.models)} rows", highlight=False, markup=False)
