"""PaCa-ViT-Tiny builder: the README's size and FLOPs, stage-wise clustering, and
patch-to-cluster attention (keys and values from 100 cluster tokens)."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.paca import PatchToClusterAttention
from vitbench.measure.counting import count_flops

#: README ("ImageNet-1K (224x224) trained weights", PaCa-Tiny (conv)): params M, GFLOPs.
README_PARAMS_M = 12.2
README_GFLOPS = 3.2
#: Self-measured; equal to the authors' module (``pacavit_tiny_p2cconv_100_0``).
SELF_MEASURED_PARAMS = 12_200_680
#: Self-measured at 224² under matmul-only.
SELF_MEASURED_GMACS = 3.2193


def test_params_match_the_readme(builders):
    with torch.device("meta"):
        params = sum(p.numel() for p in builders["paca_vit_tiny"]().parameters())
    assert params == SELF_MEASURED_PARAMS
    assert round(params / 1e6, 1) == README_PARAMS_M


def test_clustering_is_stage_wise(builders):
    """Stages 1-3 compute the assignment in their first block only and normalise cluster
    tokens in every block; stage 4 (0 clusters) is plain self-attention."""
    with torch.device("meta"):
        model = builders["paca_vit_tiny"]()
    assert [len(stage) for stage in model.stages] == [2, 2, 4, 2]
    for index, stage in enumerate(model.stages):
        for position, block in enumerate(stage):
            attn = block.attn
            assert attn.num_clusters == (100 if index < 3 else 0)
            assert (attn.clustering is not None) == (index < 3 and position == 0)
            assert isinstance(attn.cluster_norm, torch.nn.LayerNorm) == (index < 3)
    assert [stage[0].attn.num_heads for stage in model.stages] == [2, 4, 8, 16]


def test_keys_and_values_come_from_the_clusters():
    """56×56 patches attend to 100 cluster tokens; the assignment is a softmax over the
    patches, and a block without its own clustering reuses the one it is given."""
    torch.manual_seed(0)
    first = PatchToClusterAttention(32, 2, num_clusters=100, computes_clusters=True).eval()
    later = PatchToClusterAttention(32, 2, num_clusters=100, computes_clusters=False).eval()
    shapes = []
    first.k.register_forward_hook(lambda module, args, out: shapes.append(out.shape))
    x = torch.randn(1, 56 * 56, 32)
    with torch.no_grad():
        out, assignment = first(x, 56, 56, None)
        _, reused = later(x, 56, 56, assignment)
    assert out.shape == x.shape and shapes == [(1, 100, 32)]
    assert assignment.shape == (1, 100, 56 * 56)
    assert torch.allclose(assignment.sum(dim=-1), torch.ones(1, 100))
    assert reused is assignment


def test_forward_sizes_and_num_classes(builders):
    torch.manual_seed(0)
    with torch.no_grad():
        out = builders["paca_vit_tiny"](num_classes=10).eval()(torch.randn(2, 3, 96, 128))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.slow
def test_macs_match_the_readme(builders):
    count = count_flops(builders["paca_vit_tiny"]().eval(), (torch.randn(1, 3, 224, 224),),
                        "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS, abs=1e-4)
    assert round(count.gmacs, 1) == README_GFLOPS
    assert count.counters_agree and count.gap_ops == []
    assert count.crosscheck_uncounted_ops == {}
