"""The optional Hugging Face zoo (``hf:``): config-built models, flattened outputs, errors."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from vitbench.measure import counting

from vitbench.build import zoo
from vitbench.errors import UnknownModelError

transformers = pytest.importorskip("transformers")


def test_segformer_b0_params_via_config():
    model = zoo.build_model("hf:SegformerForSemanticSegmentation", {"num_labels": 150}, (64, 64))
    assert 3.7 <= counting.count_params(model) / 1e6 <= 3.8  # paper: 3.8 M
    outputs = model(torch.randn(1, 3, 64, 64))
    assert isinstance(outputs, tuple) and outputs[0].shape == (1, 150, 16, 16)


def test_segformer_counts_with_both_counters():
    model = zoo.build_model("hf:SegformerForSemanticSegmentation", {"num_labels": 19}, (64, 64))
    count = counting.count_flops(model, zoo.example_inputs(model, 1, (64, 64)), "matmul-only")
    assert count.error is None and count.counter == "fvcore+sdpa"
    assert count.gmacs > 0 and count.counters_agree


def test_hf_names_are_model_classes():
    names = zoo._hf_names()
    assert "SegformerForSemanticSegmentation" in names and "SegformerModel" in names
    assert not any(n.endswith("Config") or "PreTrained" in n or n.startswith("Auto") for n in names)
    with pytest.raises(UnknownModelError, match="did you mean hf:SegformerForSemanticSegmentation"):
        zoo.check_model("hf:SegformerForSemanticSegmentaton")


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import now raises ImportError
    with pytest.raises(UnknownModelError) as info:
        zoo.check_model("hf:SegformerForSemanticSegmentation")
    message = str(info.value)
    assert "vitbench[hf]" in message and "\n" not in message


def test_flatten_outputs_handles_dicts_dataclasses_and_nesting():
    a, b, c = torch.zeros(1), torch.ones(2), torch.ones(3)

    @dataclasses.dataclass
    class Out:
        logits: torch.Tensor
        hidden: tuple
        loss: object = None

    assert zoo.flatten_outputs(Out(a, (b, c))) == (a, b, c)
    assert zoo.flatten_outputs([{"boxes": a, "labels": b}, {"scores": c}]) == (a, b, c)
    assert zoo.flatten_outputs(a) == (a,)


def test_a_suite_naming_an_hf_model_validates_and_plans_a_job():
    from vitbench.config.plan import plan
    from vitbench.config.suite import parse_suite

    suite = parse_suite("name: hf\nmodels:\n  - {name: SegFormer, "
                        "model: hf:SegformerForSemanticSegmentation}\n", "hf.yaml")
    (planned,) = plan(suite)
    assert planned.job.model == "hf:SegformerForSemanticSegmentation"
    assert planned.row.status == "pending"
