"""The lockstep worker: one side of an A/B pair, timed in blocks on the parent's command.

The protocol and why it exists: :mod:`vitbench.gate.lockstep` (the parent side).
Usage (by the parent, not by people): ``python -m vitbench.measure.lockstep_worker JOB.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from vitbench.config.spec import Job


def _serve(job: Job, proto) -> int:
    import resource

    import torch

    from vitbench.measure import counting
    from vitbench.build import zoo
    from vitbench.measure.job import (_proc_status_kib, _reset_peak_rss, configure_threads, prepare_inputs,
                          prepare_module, read_peak_memory)
    from vitbench.measure.timing import CudaEventTimer, HostTimer

    def send(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    configure_threads(job.threads)
    cuda = job.device == "cuda"
    try:
        zoo.import_zoo(job.model)
        torch.manual_seed(0)
        module = zoo.build_model(job.model, job.kwargs, job.image_size)
        params = counting.count_params(module)
        if cuda and job.cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = job.cudnn_benchmark
        module, context = prepare_module(job, module)
        inputs = prepare_inputs(job, module, job.batch_size)
    except Exception as exc:  # noqa: BLE001 - the row records it
        send({"event": "error", "error": f"{exc.__class__.__name__}: {exc}".splitlines()[0][:500]})
        return 0
    if cuda:
        timer, sync = CudaEventTimer(), torch.cuda.synchronize
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        rss_ok, rss_before = False, None
    else:
        timer, sync = HostTimer(), (lambda: None)
        rss_ok = _reset_peak_rss()
        rss_before = _proc_status_kib("VmRSS")

    def call() -> int:
        token = timer.start()
        module(*inputs)
        return timer.stop(token)

    with context():
        sync()
        try:
            first_ns = call()
        except Exception as exc:  # noqa: BLE001
            send({"event": "error", "error": f"first call: {exc.__class__.__name__}: {exc}"[:500]})
            return 0
        send({"event": "ready", "first_call_ms": first_ns / 1e6, "params": params,
              "torch_num_threads": torch.get_num_threads()})
        faults = timed_calls = 0
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["cmd"] == "warm":
                deadline = time.perf_counter() + float(cmd.get("seconds", 0))
                samples, calls = [], 0
                while calls < int(cmd.get("calls", 0)) or time.perf_counter() < deadline:
                    samples.append(call() / 1e6)
                    calls += 1
                samples.sort()
                send({"event": "warm", "calls": calls, "median_ms": samples[len(samples) // 2]})
            elif cmd["cmd"] == "time":
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                samples = [call() / 1e6 for _ in range(int(cmd["calls"]))]
                faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
                timed_calls += len(samples)
                send({"event": "time", "samples_ms": samples})
            elif cmd["cmd"] == "finish":
                break
    out: dict[str, Any] = {"event": "finish",
                           "minor_faults_per_call": faults / timed_calls if timed_calls else None}
    memory = read_peak_memory(module, cuda=cuda,
                              rss_before_inference_kib=rss_before if rss_ok else None)
    out.update({k: memory[k] for k in ("peak_memory_mb", "peak_memory_reserved_mb",
                                       "memory_method")})
    send(out)
    return 0


def main(argv: list[str]) -> int:
    # The protocol gets its own copy of stdout; fd 1 then points at stderr so that anything
    # a model or library prints cannot corrupt it.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    job = Job.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    return _serve(job, proto)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
