"""Measuring one model: counting (params, GFLOPs), the timed loop, peak memory, composed per job inside a worker process."""
