"""The static stage: a model's parameters and GFLOPs as one :class:`~vitbench.records.StaticCost`.

How the two counters work and why: :mod:`vitbench.measure.counting`. Counts are per image
(batch 1), in float32 on the CPU, whatever device and dtype the job times in.
"""

from __future__ import annotations

from vitbench.config.spec import Job
from vitbench.records import StaticCost


def count_static(job: Job, module, *, flops: bool = True) -> StaticCost:
    """Parameters and, with ``flops``, GFLOPs (MACs) of ``module`` under the job's convention.

    With ``flops`` the module is moved to the CPU in float32 first (in place, as
    ``Module.to`` does); without it nothing is traced and the module is left where it is.
    """
    from vitbench.measure import counting

    if not flops:
        return StaticCost(params=counting.count_params(module))
    import torch

    from vitbench.build import zoo

    module = module.to(device="cpu", dtype=torch.float32)  # counts are per image, fp32
    count = counting.count_flops(module, zoo.example_inputs(module, 1, job.image_size),
                                 job.flops_convention)
    return StaticCost(
        params=counting.count_params(module), gmacs=count.gmacs, counter=count.counter,
        crosscheck_gmacs=count.crosscheck_gmacs, crosscheck_counter=count.crosscheck_counter,
        counters_agree=count.counters_agree, uncounted_ops=count.uncounted_ops,
        gap_ops=count.gap_ops, crosscheck_uncounted_ops=count.crosscheck_uncounted_ops,
        error=count.error or count.crosscheck_error)
