"""ViL (Vision Longformer) and ViL-LS builders on the shared MsViT skeleton: the sources'
printed sizes and MACs, the ARCH strings, and what each attention lets a query see."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from vitbench.build.builders.msvit import FullAttention, MsViT, StageSpec, parse_arch
from vitbench.build.builders.vil import LongformerAttention, longformer_factory, vil_arch
from vitbench.build.builders.vil_ls import LongShortAttention, long_short_factory, vil_ls_arch
from vitbench.measure.counting import count_flops

VIL = ("vil_small", "vil_medium_deep", "vil_base_deep")
VIL_LS = ("vil_ls_medium", "vil_ls_base", "vil_ls_medium_384")
#: README (microsoft/vision-longformer) and paper: ViL-Small / Medium-Deep / Base-Deep.
README_VIL_PARAMS_M = {"vil_small": 24.6, "vil_medium_deep": 39.7, "vil_base_deep": 55.7}
#: Paper (arXiv:2103.15358 Table 3) GFLOPs = GMACs, exact windows; README, sliding chunks.
PAPER_VIL_GMACS = {"vil_small": 4.86, "vil_medium_deep": 8.7, "vil_base_deep": 13.4}
README_VIL_CHUNK_GMACS = {"vil_small": 5.12, "vil_medium_deep": 9.1}
#: README (NVIDIA/transformer-ls imagenet/): params, FLOPs (G); the seed prints 39.9 M at 384².
README_LS = {"vil_ls_medium": (39.8, 8.7), "vil_ls_base": (55.8, 13.4),
             "vil_ls_medium_384": (39.8, 28.7)}
SEED_LS_384_PARAMS_M = 39.9
#: Self-measured, pinned (equal to the sources' own MsViT, checked once by loading weights).
SELF_MEASURED_PARAMS = {"vil_small": 24_657_328, "vil_medium_deep": 39_782_296,
                        "vil_base_deep": 55_801_384, "vil_ls_medium": 39_799_423,
                        "vil_ls_base": 55_834_363, "vil_ls_medium_384": 39_947_653}
SELF_MEASURED_GMACS = {"vil_small": 4.8811, "vil_medium_deep": 8.7393, "vil_base_deep": 13.4286,
                       "vil_small_chunk": 5.1412, "vil_medium_deep_chunk": 9.1301,
                       "vil_ls_medium": 8.6888, "vil_ls_base": 13.3451,
                       "vil_ls_medium_384": 28.6469}


def _params(model: nn.Module, skip_tables: bool = False) -> int:
    return sum(p.numel() for name, p in model.named_parameters()
               if not (skip_tables and any(t in name for t in ("bias_table", "g2l", "g2g"))))


class _BoundBlock(nn.Module):
    """A block with its map size bound, so the counters see one tensor input."""

    def __init__(self, block: nn.Module, hw: tuple[int, int]):
        super().__init__()
        self.block, self.hw = block, hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, self.hw)


def _block_gmacs(block: nn.Module, hw: tuple[int, int], tokens: int, dim: int) -> float:
    result = count_flops(_BoundBlock(block, hw).eval(), (torch.randn(1, tokens, dim),),
                         "matmul-only")
    assert result.counters_agree and not result.gap_ops, result
    assert not result.crosscheck_uncounted_ops, result.crosscheck_uncounted_ops
    return result.gmacs


def _model_gmacs(arch: str, make_sparse, kind: str, img_size: int, cache: dict,
                 num_classes: int = 1000) -> float:
    """The MACs of ``MsViT(arch)`` at ``img_size``²: one counted block per stage times the
    stage's depth (its blocks are alike), plus the patch embeddings and the head. Blocks of
    the same kind, width and map size are counted once across models (``cache``)."""
    specs = parse_arch(arch)
    one_each = None
    total, side, in_chans = 0.0, img_size, 3
    for index, spec in enumerate(specs):
        side //= spec.patch
        total += side * side * spec.dim * in_chans * spec.patch ** 2 / 1e9
        key = (replace(spec, depth=1), kind if spec.sparse else "full", side)
        if key not in cache:
            if one_each is None:  # depth 1 everywhere: cheap to build on the CPU
                one_each = MsViT([replace(s, depth=1) for s in specs], make_sparse,
                                 img_size=img_size)
            cache[key] = _block_gmacs(one_each.stages[index].blocks[0], (side, side),
                                      spec.global_tokens + side * side, spec.dim)
        total += cache[key] * spec.depth
        in_chans = spec.dim
    return total + specs[-1].dim * num_classes / 1e9


@pytest.fixture(scope="module")
def block_cache():
    return {}


def test_all_variants_registered(builders):
    for name in VIL + VIL_LS:
        assert name in builders


def test_arch_strings_are_the_sources():
    # transformer-ls imagenet/launch/train/train_medium_224.sh, verbatim.
    assert vil_ls_arch((1, 4, 16, 1)) == (
        "l1,h3,d96,n1,s1,g1,p4,f7,a0,r8_l2,h3,d192,n4,s1,g1,p2,f7,a0,r8_"
        "l3,h6,d384,n16,s0,g1,p2,f7,a0,r8_l4,h12,d768,n1,s0,g0,p2,f7,a0,r8")
    specs = parse_arch(vil_arch((1, 2, 8, 1)))
    assert [s.depth for s in specs] == [1, 2, 8, 1]
    assert [(s.dim, s.heads, s.patch) for s in specs] == [(96, 3, 4), (192, 3, 2), (384, 6, 2),
                                                          (768, 12, 2)]
    assert [s.sparse for s in specs] == [True, True, False, False]
    assert [s.global_tokens for s in specs] == [1, 1, 1, 0]
    assert parse_arch(vil_ls_arch((1, 4, 16, 1), window=8))[0] == StageSpec(
        heads=3, dim=96, depth=1, sparse=True, global_tokens=1, patch=4, window=8, rank=8)
    with pytest.raises(ValueError, match="a1"):
        parse_arch("l1,h3,d96,n1,s1,g1,p4,f7,a1")


@pytest.mark.parametrize("name", VIL)
def test_vil_params_match_readme_without_bias_tables(builders, name):
    """The printed ViL sizes leave out the relative-position tables (43.8-127.2 k)."""
    with torch.device("meta"):
        model = builders[name]()
    assert _params(model) == SELF_MEASURED_PARAMS[name]
    assert _params(model, skip_tables=True) / 1e6 == pytest.approx(README_VIL_PARAMS_M[name],
                                                                   abs=0.05)
    assert _params(model) / 1e6 == pytest.approx(README_VIL_PARAMS_M[name], rel=0.003)


@pytest.mark.parametrize("name", VIL_LS)
def test_vil_ls_params_match_readme(builders, name):
    with torch.device("meta"):
        params = _params(builders[name]())
    assert params == SELF_MEASURED_PARAMS[name]
    if name == "vil_ls_medium_384":  # larger bias tables; the README repeats the 224² count
        assert params / 1e6 == pytest.approx(SEED_LS_384_PARAMS_M, abs=0.05)
    else:
        assert params / 1e6 == pytest.approx(README_LS[name][0], abs=0.05)


VIL_DEPTHS = {"vil_small": (1, 2, 8, 1), "vil_medium_deep": (1, 4, 16, 1),
              "vil_base_deep": (1, 8, 24, 1)}
LS_ARCHS = {"vil_ls_medium": (vil_ls_arch((1, 4, 16, 1)), 224),
            "vil_ls_base": (vil_ls_arch((1, 8, 24, 1)), 224),
            "vil_ls_medium_384": (vil_ls_arch((1, 4, 16, 1), window=8), 384)}


def test_vil_exact_windows_give_the_papers_macs(block_cache):
    for name, depths in VIL_DEPTHS.items():
        gmacs = _model_gmacs(vil_arch(depths), longformer_factory(), "exact", 224, block_cache)
        assert gmacs == pytest.approx(SELF_MEASURED_GMACS[name], abs=1e-3)
        assert gmacs == pytest.approx(PAPER_VIL_GMACS[name], abs=0.05)


def test_vil_sliding_chunks_give_the_readmes_macs(block_cache):
    for name, readme in README_VIL_CHUNK_GMACS.items():
        gmacs = _model_gmacs(vil_arch(VIL_DEPTHS[name]), longformer_factory(sliding_chunk=True),
                             "chunk", 224, block_cache)
        assert gmacs == pytest.approx(SELF_MEASURED_GMACS[f"{name}_chunk"], abs=1e-3)
        assert gmacs == pytest.approx(readme, abs=0.05)


def test_vil_ls_macs_match_readme(block_cache):
    for name, (arch, size) in LS_ARCHS.items():
        gmacs = _model_gmacs(arch, long_short_factory, "ls", size, block_cache)
        assert gmacs == pytest.approx(SELF_MEASURED_GMACS[name], abs=1e-3)
        assert gmacs == pytest.approx(README_LS[name][1], abs=0.06)


def test_builders_use_these_arch_strings(builders):
    """What the MAC tests count is what the registered builders build."""
    with torch.device("meta"):
        small, ls_384 = builders["vil_small"](), builders["vil_ls_medium_384"]()
        chunked = builders["vil_small"](sliding_chunk=True)
    assert [len(stage.blocks) for stage in small.stages] == [1, 2, 8, 1]
    assert isinstance(small.stages[0].blocks[0].attn, LongformerAttention)
    assert small.stages[0].blocks[0].attn.size == 15  # exact windows by default
    assert chunked.stages[1].blocks[0].attn.size == 21
    assert ls_384.stages[1].blocks[0].attn.window == 8
    assert ls_384.stages[2].blocks[0].attn.resolution == (24, 24)  # built for 384²


TINY_ARCH = "l1,h1,d16,n1,s1,g1,p4,f7,a0_l2,h2,d32,n1,s0,g0,p2,f7,a0"


@pytest.mark.parametrize("sparse", ["exact", "chunk", "ls"])
def test_forward_shapes_and_pooling(sparse):
    def make(spec, resolution):
        if sparse == "ls":
            return LongShortAttention(spec.dim, spec.heads, spec.window, 2, spec.global_tokens)
        return LongformerAttention(spec.dim, spec.heads, spec.window, spec.global_tokens,
                                   sliding_chunk=sparse == "chunk")

    torch.manual_seed(0)
    model = MsViT(TINY_ARCH, make, img_size=56, num_classes=10).eval()
    assert isinstance(model.stages[1].blocks[0].attn, FullAttention)
    with torch.no_grad():
        tokens = model.forward_features(torch.randn(2, 3, 56, 56))
        out = model(torch.randn(2, 3, 56, 56))
    assert tokens.shape == (2, 7 * 7, 32)  # the last stage has no global token: mean pool
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    # Biases and masks follow the activations' dtype.
    with torch.no_grad():
        half = model.to(torch.bfloat16)(torch.randn(1, 3, 56, 56, dtype=torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()


def test_full_attention_is_built_for_one_map_size():
    model = MsViT(TINY_ARCH, lambda spec, res: LongformerAttention(spec.dim, spec.heads, 7, 1),
                  img_size=56)
    with pytest.raises(ValueError, match="img_size"):
        model(torch.randn(1, 3, 64, 64))


def _influence(attn: nn.Module, side: int, glob: int, query: int | None = None,
               dim: int = 8) -> torch.Tensor:
    """``(side, side)``: whether perturbing each local token moves the output of token
    ``query`` (default: the first local token, map position (0, 0))."""
    torch.manual_seed(0)
    attn.eval()
    query = glob if query is None else query
    x = torch.randn(1, glob + side * side, dim)
    with torch.no_grad():
        base = attn(x, (side, side))[0, query]
        seen = torch.zeros(side * side, dtype=torch.bool)
        for token in range(side * side):
            y = x.clone()
            y[0, glob + token] += 1.0
            seen[token] = not torch.equal(attn(y, (side, side))[0, query], base)
    return seen.view(side, side)


def test_exact_window_is_2w_plus_1_around_the_query():
    seen = _influence(LongformerAttention(8, 2, window=3, global_tokens=0), side=6, glob=0)
    assert seen[:4, :4].all() and not seen[4:].any() and not seen[:, 4:].any()


def test_sliding_chunk_sees_the_3x3_chunk_neighbourhood():
    attn = LongformerAttention(8, 2, window=3, global_tokens=0, sliding_chunk=True)
    seen = _influence(attn, side=8, glob=0)  # 8 is no multiple of 3: padded and masked
    assert seen[:6, :6].all() and not seen[6:].any() and not seen[:, 6:].any()


def test_global_token_attends_to_every_local_token():
    attn = LongformerAttention(8, 2, window=3, global_tokens=1)
    assert _influence(attn, side=6, glob=1, query=0).all()
    # A local query still sees only its window (the global token's key/value is its own).
    seen = _influence(attn, side=6, glob=1)
    assert seen[:4, :4].all() and not seen[4:].any() and not seen[:, 4:].any()


def test_long_short_window_is_the_segment_neighbourhood():
    """Segment (0, 0) of w=4 sees rows/cols -2..5; rank 0 and no global token: nothing else."""
    seen = _influence(LongShortAttention(8, 2, window=4, rank=0, global_tokens=0),
                      side=8, glob=0)
    assert seen[:6, :6].all() and not seen[6:].any() and not seen[:, 6:].any()


def test_long_short_dynamic_projection_and_global_token_reach_every_token():
    seen = _influence(LongShortAttention(8, 2, window=4, rank=2, global_tokens=0),
                      side=8, glob=0)
    assert seen.all()
    # The global token attends to the local tokens' outputs.
    attn = LongShortAttention(8, 2, window=4, rank=0, global_tokens=1)
    assert _influence(attn, side=8, glob=1, query=0).all()


def test_long_short_needs_whole_segments():
    attn = LongShortAttention(8, 2, window=4, rank=2, global_tokens=1)
    with pytest.raises(ValueError, match="segment"):
        attn(torch.randn(1, 1 + 6 * 6, 8), (6, 6))
