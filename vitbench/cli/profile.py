"""``vitbench profile``: per-module params and GFLOPs of one model, uncounted ops included."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import _parse_image_size, app

_FORMATS = ("md", "csv", "json")


@app.command()
def profile(
    target: str = typer.Argument(..., metavar="MODEL",
                                 help="zoo:identifier (timm:vit_small_patch16_224) or SUITE.yaml:ROW"),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="N or HxW [default: the row's, else 224]"),
    depth: Optional[int] = typer.Option(3, "--depth", min=0, help="deepest module level shown"),
    flops_convention: Optional[str] = typer.Option(None, "--convention", "--flops-convention",
                                                   help="matmul-only | fvcore"),
    fmt: Optional[str] = typer.Option(None, "--format", help="md | csv | json [default: a tree on the terminal]"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the export here (format from --format or the suffix)"),
) -> None:
    """Show where a model's parameters and GFLOPs go, module by module.

    GFLOPs are multiply-accumulates per image (one image, CPU, float32), from fvcore with
    vitbench's attention handle; a ViT's blocks.N.attn shows its linear projections and
    its attention products (scaled_dot_product_attention) separately. The total is
    cross-checked with torch's FlopCounterMode, and ops either counter skipped are listed.

    Examples:

      vitbench profile timm:vit_small_patch16_224 --depth 3

      vitbench profile suites/lightweight.yaml:PVTv2-B0 --format csv --out pvt.csv
    """
    from vitbench.cli.app import _fail
    from vitbench.cli.console import out as console
    from vitbench.errors import VitbenchError
    from vitbench.tools.profile import (header_lines, profile_model, render_markdown, render_tree, table_rows,
                           uncounted_lines)

    if flops_convention is not None and flops_convention not in ("matmul-only", "fvcore"):
        raise _fail(f"--convention: expected matmul-only or fvcore, got {flops_convention!r}")
    if fmt is None and out is not None:
        fmt = out.suffix.lstrip(".").lower() or "md"
        fmt = "md" if fmt == "markdown" else fmt
    if fmt is not None and fmt not in _FORMATS:
        raise _fail(f"--format: expected one of {', '.join(_FORMATS)}, got {fmt!r}")
    size = _parse_image_size(image_size)
    if isinstance(size, int):
        size = (size, size)
    try:
        result = profile_model(target, image_size=size, convention=flops_convention, max_depth=depth)
    except VitbenchError as exc:
        raise _fail(str(exc))

    if fmt is None:
        for line in header_lines(result):
            console.print(line, highlight=False, soft_wrap=True)
        console.print(render_tree(result))
        for line in uncounted_lines(result):
            console.print(line, highlight=False, soft_wrap=True)
        return
    if fmt == "md":
        text = "\n".join(render_markdown(result)) + "\n"
    elif fmt == "json":
        text = json.dumps(result.to_dict(), indent=1) + "\n"
    else:
        buffer = io.StringIO()
        rows = table_rows(result)
        buffer.write("".join(f"# {line}\n" for line in header_lines(result)))
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        buffer.write("".join(f"# {line}\n" for line in uncounted_lines(result)))
        text = buffer.getvalue()
    if out is None:
        print(text, end="")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"written: {out}", highlight=False)
