"""CvT-13 / CvT-21 through the ``hf:`` zoo: transformers' ``CvtConfig`` is CvT's published
configuration, so the suites need no own builder. Sizes against CvT's README, and what the
Transformer-LS seed's larger GFLOPs count instead."""

from __future__ import annotations

import pytest
import torch

from vitbench.build import zoo
from vitbench.measure.counting import count_flops

transformers = pytest.importorskip("transformers")

MODEL = "hf:CvtForImageClassification"
#: The suite rows' kwargs: CvT-13 is the default config; CvT-21 has depths 1-4-16.
KWARGS = {"cvt_13": {"num_labels": 1000}, "cvt_21": {"num_labels": 1000, "depth": [1, 4, 16]}}
#: microsoft/CvT README (ImageNet-1k): Param 20M / 32M; GFLOPs 4.5 / 7.1 at 224², 16.3 / 24.9
#: at 384².
README_PARAMS_M = {"cvt_13": 20, "cvt_21": 32}
README_GFLOPS = {("cvt_13", 224): 4.5, ("cvt_21", 224): 7.1,
                 ("cvt_13", 384): 16.3, ("cvt_21", 384): 24.9}
#: Self-measured, pinned against regressions.
SELF_MEASURED_PARAMS = {"cvt_13": 19_997_480, "cvt_21": 31_622_696}
SELF_MEASURED_GMACS = {("cvt_13", 224): 4.5661, ("cvt_21", 224): 7.1780,
                       ("cvt_13", 384): 16.2693, ("cvt_21", 384): 24.8490}


def _build(name: str, size: int = 224, **overrides):
    return zoo.build_model(MODEL, {**KWARGS[name], **overrides}, (size, size)).eval()


def test_the_zoo_knows_the_class():
    zoo.check_model(MODEL)


def test_default_config_is_cvt_13_but_with_two_labels():
    config = transformers.CvtConfig()
    assert list(config.depth) == [1, 2, 10] and list(config.embed_dim) == [64, 192, 384]
    assert list(config.num_heads) == [1, 3, 6] and list(config.stride_kv) == [2, 2, 2]
    assert list(config.cls_token) == [False, False, True]
    # Rows must say num_labels: 1000, or the head is 384×2 and 0.38 M params short.
    assert config.num_labels == 2


@pytest.mark.parametrize("name", sorted(KWARGS))
def test_params_match_the_readme(name):
    with torch.device("meta"):
        model = _build(name)
    params = sum(p.numel() for p in model.parameters())
    assert params == SELF_MEASURED_PARAMS[name]
    assert round(params / 1e6) == README_PARAMS_M[name]


def test_cvt_13_gmacs_at_224():
    """4.57 against the README's 4.5: the README's 224² figures read as truncated."""
    model = _build("cvt_13")
    count = count_flops(model, zoo.example_inputs(model, 1, (224, 224)), "matmul-only",
                        crosscheck=False)
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS[("cvt_13", 224)], abs=1e-4)
    assert 0 <= count.gmacs - README_GFLOPS[("cvt_13", 224)] < 0.1
    assert count.gap_ops == []


@pytest.mark.slow
@pytest.mark.parametrize("name,size", sorted(README_GFLOPS))
def test_gmacs_match_the_readme(name, size):
    """Self-measured; the README truncates at 224² (4.57 → 4.5, 7.18 → 7.1) and rounds at
    384² (16.27 → 16.3, 24.85 → 24.9)."""
    model = _build(name, size)
    count = count_flops(model, zoo.example_inputs(model, 1, (size, size)), "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS[(name, size)], abs=1e-4)
    assert abs(count.gmacs - README_GFLOPS[(name, size)]) < 0.1
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


@pytest.mark.slow
def test_seed_gflops_are_cvt_without_the_key_value_stride():
    """The Transformer-LS seed prints CvT-21 at 10.1 G: CvT-21 with stride-1 key/value
    projections (the variant CvT's paper ablates) counts exactly that; the released model
    (stride 2) counts 7.18."""
    model = _build("cvt_21", stride_kv=[1, 1, 1])
    count = count_flops(model, zoo.example_inputs(model, 1, (224, 224)), "matmul-only",
                        crosscheck=False)
    assert round(count.gmacs, 1) == 10.1
