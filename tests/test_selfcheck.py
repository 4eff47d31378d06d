"""The harness self-check runs end to end on a tiny real model (a benchmark, so no timing
asserts), names its schema, and leaves the parent process's torch threads alone."""

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


def test_the_report_names_its_schema_and_leaves_torch_threads_as_they_were():
    import torch

    from vitbench.tools.selfcheck import run_selfcheck

    before = torch.get_num_threads()
    report = run_selfcheck(("timm:test_vit",), threads=before + 1, image_size=64,
                           invocation_count=0, min_time_s=0.02, rounds=1)
    assert report["schema"] == "vitbench.selfcheck/1" and "kind" not in report
    assert report["checks"][0]["error"] is None
    assert torch.get_num_threads() == before, "the parent process keeps its own threads"


def test_the_selfcheck_job_times_one_cpu_image_from_the_built_in_defaults():
    from vitbench.config.spec import BUILTIN_DEFAULTS
    from vitbench.tools.selfcheck import selfcheck_job

    job = selfcheck_job("timm:resnet18", threads=2, image_size=96, warmup=3, repeat=7,
                        min_time_s=0.5, timeout_s=30)
    assert (job.name, job.model, job.kwargs, job.image_size) == (
        "timm:resnet18", "timm:resnet18", {}, (96, 96))
    assert (job.device, job.batch_size, job.threads, job.processes) == ("cpu", 1, 2, 1)
    assert (job.warmup, job.repeat, job.min_time_s, job.timeout_s) == (3, 7, 0.5, 30)
    assert job.count is False and job.compile is None
    for key in ("dtype", "warmup_s", "max_time_s", "flops_convention", "tolerance_pct", "mode"):
        assert getattr(job, key) == BUILTIN_DEFAULTS[key], key
