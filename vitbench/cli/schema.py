"""``vitbench schema``: the JSON Schemas of the files people parse or write by hand.

The schemas are generated from the pydantic models that read and write those files (one
definition, no drift) and also shipped as files in ``vitbench/schemas/`` so tools that
cannot run vitbench (a CI linter, an editor's YAML language server) can use them;
``tests/test_schema.py`` keeps the shipped files equal to the generated ones.
"""

from __future__ import annotations

import json
from enum import Enum
from importlib import resources
from typing import Any

import typer

from vitbench.cli.app import app

#: The ``$id`` prefix of every schema vitbench ships.
SCHEMA_ID = "https://vitbench.invalid/schemas/{}.schema.json"


class SchemaKind(str, Enum):
    results = "results"
    suite = "suite"
    baseline = "baseline"


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``results.json``, a suite file or a baseline."""
    from vitbench.config.spec import Suite
    from vitbench.gate.baseline import Baseline
    from vitbench.records import RunResult

    model, mode, title = {
        SchemaKind.results: (RunResult, "serialization", "vitbench results file (results.json)"),
        SchemaKind.suite: (Suite, "validation", "vitbench suite file (suites/*.yaml)"),
        SchemaKind.baseline: (Baseline, "serialization", "vitbench baseline file"),
    }[SchemaKind(kind)]
    body = model.model_json_schema(by_alias=True, mode=mode)
    if kind == SchemaKind.suite:
        body["properties"].pop("path", None)  # set by the loader, never written in a suite
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID.format(kind), **body, "title": title}


def shipped_schema(kind: str) -> dict[str, Any]:
    """The schema file shipped in the package for ``kind``."""
    text = resources.files("vitbench").joinpath("schemas", f"{kind}.schema.json").read_text(
        encoding="utf-8")
    return json.loads(text)


def schema_text(kind: str) -> str:
    return json.dumps(json_schema(kind), indent=1, ensure_ascii=False) + "\n"


@app.command()
def schema(
    kind: SchemaKind = typer.Argument(..., help="which file: results, suite or baseline"),
) -> None:
    """Print the JSON Schema of a results.json, a suite or a baseline file.

    Generated from the models that read and write those files; the same schemas ship in the
    package as vitbench/schemas/KIND.schema.json. Validate a file with any JSON Schema tool,
    e.g. check-jsonschema.

    Examples:

    \b
      vitbench schema results > results.schema.json
      check-jsonschema --schemafile results.schema.json \\
          results/lightweight/*/results.json
    """
    typer.echo(schema_text(kind.value), nl=False)
