"""Commands' libraries that are not the main pipeline: per-module profiles, resolution sweeps, the harness self-check."""
