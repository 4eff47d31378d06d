"""``vitbench profile``: per-module params and GFLOPs of one model, uncounted ops included."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Literal, Optional, get_args

import typer

from vitbench.cli.app import app, fail, parse_image_size
from vitbench.conventions import FlopConvention

ExportFormat = Literal["md", "csv", "json"]
FORMATS = get_args(ExportFormat)


@app.command()
def profile(
    target: str = typer.Argument(..., metavar="MODEL",
                                 help="zoo:identifier (timm:vit_small_patch16_224) or SUITE.yaml:ROW"),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="N or HxW [default: the row's, else 224]"),
    depth: Optional[int] = typer.Option(3, "--depth", min=0, help="deepest module level shown"),
    flops_convention: Optional[FlopConvention] = typer.Option(
        None, "--convention", "--flops-convention",
        help="what GFLOPs count [default: the row's, else matmul-only]"),
    fmt: Optional[ExportFormat] = typer.Option(
        None, "--format", help="export format [default: a tree on the terminal]"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the export here (format from --format or the suffix)"),
    python_path: Optional[list[Path]] = typer.Option(
        None, "--python-path", exists=True, file_okay=False,
        help="folder searched for a python: MODEL after the installed packages (repeatable; "
             "never the working directory); a suite row uses its suite's folders"),
) -> None:
    """Show where a model's parameters and GFLOPs go, module by module.

    GFLOPs are multiply-accumulates per image (one image, CPU, float32), from fvcore with
    vitbench's attention handle; a ViT's blocks.N.attn shows its linear projections and
    its attention products (scaled_dot_product_attention) separately. The total is
    cross-checked with torch's FlopCounterMode, and ops either counter skipped are listed.

    Examples:

    \b
      vitbench profile timm:vit_small_patch16_224 --depth 3
      vitbench profile suites/lightweight.yaml:PVTv2-B0 --format csv --out \\
          pvt.csv
    """
    from vitbench.cli.console import out as console
    from vitbench.errors import VitbenchError
    from vitbench.files import write_atomic
    from vitbench.tools.profile import header_lines, profile_model, render_tree, uncounted_lines

    if fmt is None and out is not None:
        fmt = {"markdown": "md", "": "md"}.get(out.suffix.lstrip(".").lower(),
                                              out.suffix.lstrip(".").lower())
        if fmt not in FORMATS:
            raise fail(f"--out {out}: cannot tell the format from the suffix; add --format "
                       f"({', '.join(FORMATS)})")
    size = parse_image_size(image_size)
    try:
        result = profile_model(target, image_size=(size, size) if isinstance(size, int) else size,
                               convention=flops_convention, max_depth=depth,
                               python_path=[str(p) for p in python_path or ()])
    except VitbenchError as exc:
        raise fail(str(exc)) from None
    if fmt is None:
        for line in header_lines(result):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(render_tree(result))
        for line in uncounted_lines(result):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    elif out is None:
        print(export_text(result, fmt), end="")
    else:
        write_atomic(out, export_text(result, fmt))
        console.print(f"written: {out}", markup=False, highlight=False)


def export_text(result, fmt: str) -> str:
    """The profile as Markdown, JSON or CSV (header and uncounted ops as ``#`` comments)."""
    from vitbench.tools.profile import header_lines, render_markdown, table_rows, uncounted_lines

    if fmt == "md":
        return "\n".join(render_markdown(result)) + "\n"
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=1) + "\n"
    buffer = io.StringIO()
    rows = table_rows(result)
    buffer.write("".join(f"# {line}\n" for line in header_lines(result)))
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    buffer.write("".join(f"# {line}\n" for line in uncounted_lines(result)))
    return buffer.getvalue()
