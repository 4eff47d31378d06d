"""The gate's fixture models (``vitbench:gate_fixture``, ``vitbench:gate_calibration``): the
injected changes the self-test relies on have exactly the size they claim (real torch)."""

from __future__ import annotations


def test_gate_fixture_injections():
    import torch

    from vitbench.build.builders import load_builders

    builders = load_builders()
    base = builders["gate_fixture"]()
    params = sum(p.numel() for p in base.parameters())
    linear = builders["gate_fixture"](extra_linear=1)
    assert sum(p.numel() for p in linear.parameters()) == params + 16 * 16 + 16
    assert builders["gate_fixture"](extra_work=0.1).extra_repeats == 2
    held = builders["gate_fixture"](hold_mb=1)
    with torch.inference_mode():
        out = held(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 10) and held._held.numel() == 2**20
    calib = builders["gate_calibration"]()
    assert calib(torch.randn(1, 3, 32, 32)).shape == ()
