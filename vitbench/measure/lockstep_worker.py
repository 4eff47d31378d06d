"""The lockstep worker: one side of an A/B pair, timed in blocks on the parent's command.

The protocol and why it exists: :mod:`vitbench.gate.lockstep` (the parent side). The worker
measures inside a :class:`~vitbench.measure.session.DeviceSession`, like the measure worker,
and times each ``time`` command with :func:`~vitbench.measure.timing.time_block` (one sample
per call, the garbage collector off); the first call and warm-up with
:func:`~vitbench.measure.timing.time_call`.
Usage (by the parent, not by people): ``python -m vitbench.measure.lockstep_worker JOB.json``.

It never outlives its parent, with the measure worker's guards
(:func:`~vitbench.measure.worker.die_with_parent`: the parent-death signal, and end-of-file on
stdin, which a thread watches while it hands the commands over). Its own deadline
(:func:`~vitbench.measure.worker.arm_deadline`) is a watchdog re-armed by every command, not
one budget for a life of many blocks: ``timeout_s`` + the grace from start-up to the first
command and from each command to the next. The parent gives the whole worker ``timeout_s``
(:mod:`vitbench.gate.lockstep`), so no gap between its commands is longer and the watchdog
fires only when the parent is stuck or the worker hangs.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from pathlib import Path

from vitbench.config.spec import Job
from vitbench.measure.worker import DEADLINE_GRACE_S, arm_deadline, die_with_parent


def _serve(job: Job, proto, commands: queue.Queue[bytes]) -> int:
    import torch

    from vitbench.build import zoo
    from vitbench.measure.counting import count_params
    from vitbench.measure.prepare import prepare_inputs, prepare_module
    from vitbench.measure.runtimes import deployment_of
    from vitbench.measure.session import DeviceSession
    from vitbench.measure.timing import time_block, time_call

    def send(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    with DeviceSession(job) as session:
        try:
            suite_code = job.model.startswith("python:")
            if suite_code:
                # The suite's own code runs here first: if it ends the process, the parent's
                # last word from this worker is "import" and the row says so.
                send({"event": "stage", "stage": "import"})
            zoo.import_zoo(job.model)
            if suite_code:
                send({"event": "stage", "stage": "build"})
            torch.manual_seed(0)
            module = zoo.build_model(job.model, job.kwargs, job.image_size)
            reparameterization = "as-built"
            if job.reparameterize:
                from vitbench.build.deploy import reparameterize

                outcome = reparameterize(module)
                module, reparameterization = outcome.module, outcome.mode
            params = count_params(module)
            module, context = prepare_module(job, module)
            inputs = prepare_inputs(job, module, job.batch_size)
        except Exception as exc:  # noqa: BLE001 - the row records it
            send({"event": "error",
                  "error": f"{exc.__class__.__name__}: {exc}".splitlines()[0][:500]})
            return 0
        session.reset_peak_memory()

        def forward():
            return module(*inputs)

        with context():
            session.sync()
            try:
                first_ns = time_call(forward, session.timer)
            except Exception as exc:  # noqa: BLE001
                send({"event": "error",
                      "error": f"first call: {exc.__class__.__name__}: {exc}"[:500]})
                return 0
            send({"event": "ready", "first_call_ms": first_ns / 1e6, "params": params,
                  "reparameterization": reparameterization,
                  "torch_num_threads": torch.get_num_threads(),
                  "deployment": (None if (deployed := deployment_of(module)) is None
                                 else deployed.model_dump(mode="json"))})
            timed_calls = 0
            while line := commands.get():  # b"": stdin closed (a worker started by hand)
                arm_deadline(job.timeout_s + DEADLINE_GRACE_S)
                cmd = json.loads(line)
                if cmd["cmd"] == "warm":
                    deadline = time.perf_counter() + float(cmd.get("seconds", 0))
                    samples, calls = [], 0
                    while calls < int(cmd.get("calls", 0)) or time.perf_counter() < deadline:
                        samples.append(time_call(forward, session.timer) / 1e6)
                        calls += 1
                    samples.sort()
                    send({"event": "warm", "calls": calls,
                          "median_ms": samples[len(samples) // 2]})
                elif cmd["cmd"] == "time":
                    with session.faults:
                        samples_ns = time_block(forward, int(cmd["calls"]), session.timer)
                    samples = [ns / 1e6 for ns in samples_ns]
                    timed_calls += len(samples)
                    send({"event": "time", "samples_ms": samples})
                elif cmd["cmd"] == "finish":
                    break
        memory = session.read_peak_memory(module)
        send({"event": "finish",
              "minor_faults_per_call": (session.faults.count / timed_calls
                                        if timed_calls else None),
              "memory": memory.model_dump()})
    return 0


def main(argv: list[str]) -> int:
    # The protocol gets its own copy of stdout; fd 1 then points at stderr so that anything
    # a model or library prints cannot corrupt it.
    commands: queue.Queue[bytes] = queue.Queue()
    die_with_parent(commands)
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    job = Job.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    arm_deadline(job.timeout_s + DEADLINE_GRACE_S)
    return _serve(job, proto, commands)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
