"""ONNX graphs of served encoders: export, int8 quantisation, ONNX Runtime sessions.

A classification or regression :class:`~aimass.models.sequence.SequenceModel`
becomes one graph with the inputs the tokenizer gives (``input_ids``,
``attention_mask`` and, for BERT-style encoders, ``token_type_ids``) and one
output, ``outputs`` (B, C) — the same raw outputs the PyTorch model returns, so
the predictor's softmax, labels and regression scaling are shared. A
token-classification (NER) model becomes a graph of ``input_ids`` and
``attention_mask`` whose ``outputs`` are its tag logits (B, T, C), which the NER
predictor reads as it reads PyTorch's. Batch and sequence length are dynamic axes.

Two variants are written:

* ``model.onnx``: fp32, exported with PyTorch's TorchScript-based exporter
  (``dynamo=False``: about 6× faster to export than the dynamo exporter here, and
  it needs no ``onnxscript``); ONNX Runtime applies its graph optimisations
  (``ORT_ENABLE_ALL``: constant folding, attention and LayerNorm fusion) when a
  session opens, for the machine it runs on, rather than baking one machine's
  fusions into the file;
* ``model-int8.onnx``: the same graph with every MatMul's weights dynamically
  quantised to int8 (``onnxruntime.quantization.quantize_dynamic``: weights
  stored as int8 per output channel, activations quantised per batch at run
  time), after ONNX Runtime's quantisation pre-processing (``quant_pre_process``:
  the machine-independent basic optimisations, constant folding first, and ONNX
  shape inference; a third fewer nodes, and no warning that it was skipped).
  Whether it is good enough to serve is decided by a parity run on held-out
  rows (:mod:`aimass.jobs.optimize`), not here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument, UnsupportedModel

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "FP32_FILE",
    "INT8_FILE",
    "OPSET",
    "VARIANTS",
    "OnnxSession",
    "export_graph",
    "quantize_int8",
]

FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
VARIANTS = {"onnx": FP32_FILE, "onnx-int8": INT8_FILE}
# Opset 17 has LayerNormalization as one operator, which ONNX Runtime fuses further.
OPSET = 17


def export_graph(
    model: torch.nn.Module,
    example: dict[str, torch.Tensor],
    path: Path,
    *,
    per_token: bool = False,
) -> list[str]:
    """Write ``model`` as an fp32 ONNX graph at ``path``; returns its input names.

    Args:
        model: The model in eval mode, on the CPU: a
            :class:`~aimass.models.sequence.SequenceModel`, or a Hugging Face model
            whose output has ``logits`` (the graph's ``outputs`` are those logits).
        example: One collated batch (its keys are the graph's inputs, in order);
            any batch works, the axes are exported as dynamic.
        path: The ``.onnx`` file to write.
        per_token: The outputs have a token axis (B, T, C), as a tagger's do.
    """
    import torch

    names = list(example)

    class Positional(torch.nn.Module):
        """The exporter passes inputs by position; the model takes them by name."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            out = self.model(**dict(zip(names, inputs, strict=True)))
            return out if isinstance(out, torch.Tensor) else out.logits

    dynamic = {name: {0: "batch", 1: "tokens"} for name in names}
    dynamic["outputs"] = {0: "batch", 1: "tokens"} if per_token else {0: "batch"}
    try:
        # The TorchScript-based exporter warns that it is deprecated in favour of the
        # dynamo exporter (chosen on purpose, see the module docstring), and tracing
        # warns at every Python branch on a tensor (TracerWarning): the parity run on
        # held-out rows (aimass.jobs.optimize) is what proves the graph.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Positional().eval(),
                tuple(example[name] for name in names),
                str(path),
                input_names=names,
                output_names=["outputs"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; name the model and the cause
        config = getattr(model, "config", None) or getattr(model.encoder, "config", None)
        raise UnsupportedModel(
            f"the {getattr(config, 'model_type', 'this')} model could not be exported to ONNX "
            f"({type(exc).__name__}: {str(exc)[:300]}); serve it with the torch backend"
        ) from exc
    return names


def quantize_int8(source: Path, target: Path) -> None:
    """Write ``source`` with int8 MatMul weights (per channel) at ``target``, after
    ONNX Runtime's quantisation pre-processing (written next to ``target``, removed)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_name(f".{target.name}.prepared")
    try:
        # Symbolic shape inference gives up on the exported encoders ("Incomplete
        # symbolic shape inference": the dynamic batch and length axes); ONNX's own
        # shape inference, which runs after the optimisations, types every MatMul.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        prepared.unlink(missing_ok=True)


class OnnxSession:
    """One ONNX Runtime session over a graph: ``run(batch) -> outputs``.

    Thread settings: ``threads`` intra-op threads (the runner's share of the
    cores, as for torch), one inter-op thread and sequential execution — a
    transformer graph is a chain, so parallel branches gain nothing and a second
    pool would only compete for the same cores. Spinning threads are turned off:
    between requests they would burn the cores other runners need.
    """

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise InvalidArgument(f"ONNX graph {path} does not exist; run 'aimass models optimize'")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = max(1, threads or _cores())
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, batch: dict[str, Any]) -> np.ndarray:
        """Outputs (B, C), or (B, T, C) for a tagger, of a collated batch (tensors or
        arrays, int64)."""
        import numpy as np

        feed = {name: np.asarray(_numpy(batch[name]), dtype=np.int64) for name in self.inputs}
        return np.asarray(self.session.run(["outputs"], feed)[0])

    def describe(self) -> dict[str, Any]:
        """What runs: the graph file and the thread settings."""
        return {"graph": self.path.name, "intra_op_threads": self.threads, "inter_op_threads": 1}


def _numpy(value: Any) -> Any:
    return value.numpy() if hasattr(value, "numpy") else value


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
