"""Suites without a YAML file: ``vitbench run --model timm:pvt_v2_b0 --model ...``.

The models named on the command line become an ordinary :class:`~vitbench.config.spec.Suite`
(so they run, report and gate exactly as a suite's rows do), and :func:`suite_yaml` writes
that suite out so what ran can be re-run, edited and committed.
"""

from __future__ import annotations

from typing import Iterable, Optional

import yaml
from pydantic import ValidationError

from vitbench.config.spec import ZOOS, ModelEntry, Suite
from vitbench.errors import VitbenchError

#: The suite name of a command-line run (its results land in results/models/UTC-STAMP/).
ADHOC_NAME = "models"


def qualified(model: str) -> str:
    """``pvt_v2_b0`` → ``timm:pvt_v2_b0`` (timm users type bare names); zoo names are kept."""
    text = model.strip()
    if ":" not in text:
        return f"timm:{text}"
    if text.split(":", 1)[0] not in ZOOS:
        raise VitbenchError(f"--model {model}: unknown zoo {text.split(':', 1)[0]!r}; known zoos: "
                            f"{', '.join(ZOOS)} (a bare name means timm)")
    return text


def row_name(model: str) -> str:
    """The row label: the identifier without its zoo (``python:pkg.mod:fn`` → ``pkg.mod:fn``)."""
    return model.split(":", 1)[1]


def suite_for_models(models: Iterable[str], *, name: str = ADHOC_NAME,
                     image_sizes: Optional[dict[str, int | tuple[int, int]]] = None) -> Suite:
    """A suite with one row per model, in the order given (a model named twice runs once).

    ``image_sizes`` gives a row its own input size (e.g. the model's default from its zoo);
    a command-line ``--image-size`` still overrides every row, as for a suite.
    """
    given: dict[str, str] = {}  # qualified model → as typed (first spelling wins)
    for raw in models:
        given.setdefault(qualified(raw), raw)
    labels = [row_name(model) for model in given]
    entries = []
    for (model, raw), label in zip(given.items(), labels):
        if labels.count(label) > 1:  # timm:resnet18 and torchvision:resnet18: keep the zoo
            label = model
        size = (image_sizes or {}).get(model)
        try:
            entries.append(ModelEntry(name=label, model=model,
                                      **({"image_size": size} if size else {})))
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise VitbenchError(f"--model {raw}: {problem}") from None
    if not entries:
        raise VitbenchError("no model given: name a SUITE file or at least one --model")
    return Suite(name=name, title="Models given on the command line", models=entries)


def suite_yaml(suite: Suite) -> str:
    """The suite as YAML, with the settings that ran (command-line overrides folded in by the
    caller) so ``vitbench run FILE`` repeats it."""
    doc = suite.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    rows = []
    for entry in doc.get("models", []):
        size = entry.get("image_size")
        if isinstance(size, list) and size[0] == size[1]:
            entry["image_size"] = size[0]
        rows.append({"name": entry.pop("name"), "model": entry.pop("model"), **entry})
    doc["models"] = rows
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=None)
