"""The harness self-check runs end to end on a tiny real model (a benchmark, so no timing asserts)."""

from vitbench.tools.selfcheck import agreement


def test_agreement_interleaves_rounds_and_reports_per_round_ratios():
    check = agreement("timm:test_vit", threads=1, image_size=64, warmup=1, min_time_s=0.01,
                      repeat=3, rounds=3)
    assert check.error is None
    for method in ("vitbench", "bare loop", "timm method", "torch Timer"):
        assert len(check.methods[method]["rounds_ms"]) == 3, method
        assert check.methods[method]["ms"] > 0
    ratio = check.ratio("bare loop")
    assert ratio is not None and ratio > 0
    report = check.to_dict()
    assert report["ratio_vs_torch_timer"] is not None
