"""The runtime part of a row (:class:`Deployment`): how a deployment runtime ran the model
(:mod:`vitbench.measure.runtimes`): the export (exporter, opset, graph size and nodes), the
session's settings, and how far its output is from eager PyTorch's on the same input.

Pure data, like :mod:`vitbench.records.parts`: frozen, unknown keys refused, no torch.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from vitbench.records.parts import Part


class Deployment(Part):
    """An exported graph under a runtime, and its output against eager's."""

    runtime: str
    #: the runtime package's version (onnxruntime, openvino, tensorrt)
    runtime_version: Optional[str] = None
    #: ``torch.onnx.export (dynamo)`` or ``torch.onnx.export (torchscript)``
    exporter: Optional[str] = None
    opset: Optional[int] = None
    #: the serialized ONNX graph with its weights, bytes
    graph_bytes: Optional[int] = None
    graph_nodes: Optional[int] = None
    #: seconds to export (0 when this process reused the graph another process of the row
    #: exported) and to build the runtime's session
    export_s: Optional[float] = None
    session_s: Optional[float] = None
    export_reused: bool = False
    #: what the session was built with: providers, threads, hints
    session: dict[str, Any] = Field(default_factory=dict)
    #: on the row's fixed timing input, the largest |runtime − eager| over every output
    #: element, and that error divided by the largest |eager| value
    max_abs_error: Optional[float] = None
    max_rel_error: Optional[float] = None
    #: the tolerance: a match is ``max_abs_error <= atol + rtol * max|eager|``
    atol: Optional[float] = None
    rtol: Optional[float] = None
    outputs_match: Optional[bool] = None

    @property
    def checked(self) -> bool:
        """The output was compared with eager's (an error figure exists)."""
        return self.max_abs_error is not None

    @property
    def comparable(self) -> bool:
        """The latency may be set beside eager's: the outputs matched within tolerance."""
        return self.outputs_match is not False

    def error_text(self) -> str:
        """The output check in words, e.g. for a report cell's tooltip."""
        return (f"max |{self.runtime} − eager| {self.max_abs_error or 0:.1e} on the timing input "
                f"(relative {self.max_rel_error or 0:.1e}); tolerance {self.atol:g} + "
                f"{self.rtol:g}·max|eager|")

    def check_line(self) -> str:
        """The output check and the export in one line (console and ``ab``'s notes), for a
        :attr:`checked` deployment."""
        verdict = "matches" if self.comparable else "DIFFERS from (latency not comparable)"
        return (f"{self.runtime} {self.runtime_version or ''}: output {verdict} eager's, "
                f"max abs error {self.max_abs_error or 0:.1e} (relative "
                f"{self.max_rel_error or 0:.1e}); {self.exporter}, opset {self.opset}, "
                f"{self.graph_nodes} nodes, {(self.graph_bytes or 0) / 1e6:.1f} MB")
