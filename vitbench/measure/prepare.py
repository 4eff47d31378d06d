"""Put a built model and its inputs in the form a job times them in: device, dtype, autocast,
channels-last, ``torch.compile``; and find the largest batch that fits on the GPU."""

from __future__ import annotations

from vitbench.config.spec import Job


def prepare_module(job: Job, module):
    """Move/cast the model as the job says; returns ``(module, forward_context_factory)``.
    On a deployment runtime the module is a :class:`~vitbench.measure.runtimes.Deployed`
    session, called like the module."""
    import contextlib

    import torch

    device = torch.device(job.device)
    dtype = getattr(torch, job.dtype)
    use_autocast = job.autocast and dtype != torch.float32
    module = module.to(device=device, dtype=torch.float32 if use_autocast else dtype)
    if job.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if job.runtime in ("onnxruntime", "openvino", "tensorrt"):
        # exported and run by a deployment runtime (vitbench.measure.runtimes), its output
        # checked against eager's on the same fixed input the timed loop feeds it
        from vitbench.measure.runtimes import deploy

        module = deploy(job, module, prepare_inputs(job, module, job.batch_size))
    elif job.compile:
        module = torch.compile(module, mode=None if job.compile == "default" else job.compile)

    def context():
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if use_autocast:
            stack.enter_context(torch.autocast(device_type=device.type, dtype=dtype))
        return stack

    return module, context


def prepare_inputs(job: Job, module, batch_size: int) -> tuple:
    """Example inputs for ``batch_size`` images on the job's device, in the dtype it feeds."""
    import torch

    from vitbench.build import zoo

    dtype = getattr(torch, job.dtype)
    input_dtype = torch.float32 if job.autocast and dtype != torch.float32 else dtype
    inputs = zoo.example_inputs(module, batch_size, job.image_size, device=job.device,
                                dtype=input_dtype)
    if job.channels_last:
        inputs = tuple(t.contiguous(memory_format=torch.channels_last)
                       if isinstance(t, torch.Tensor) and t.dim() == 4 else t for t in inputs)
    return inputs


def search_max_batch(job: Job, module, context, *, limit: int) -> tuple[int, list[tuple[int, bool]]]:
    """Largest batch up to ``limit`` that runs a forward pass on the GPU without running out
    of memory, searching upward from the job's batch size."""
    import gc

    import torch

    from vitbench.measure.timing import find_max_batch

    def fits(batch: int) -> bool:
        inputs = None
        try:
            inputs = prepare_inputs(job, module, batch)
            with context():
                module(*inputs)
            torch.cuda.synchronize()
            return True
        except torch.OutOfMemoryError:
            return False
        finally:
            del inputs
            gc.collect()
            torch.cuda.empty_cache()

    return find_max_batch(fits, start=max(1, job.batch_size), limit=limit)
