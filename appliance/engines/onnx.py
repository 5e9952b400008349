"""One onnxruntime session on the CPU, for the small models that run beside the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.conversation.ports import EngineError

__all__ = ["cpu_session"]


def cpu_session(path: Path, *, what: str, fix: str) -> Any:
    """An inference session of the ONNX model at `path`, on one thread (the model runs beside
    the transcription, the language model and the voice on a few cores). `EngineError` when
    the file is missing (naming `what` and how to `fix` it) or not a model onnxruntime reads.
    Call it on the engine's worker: onnxruntime is heavy to import."""
    import onnxruntime  # noqa: PLC0415 - heavy; loaded on the worker

    if not path.is_file():
        raise EngineError(f"no {what} at {path}; {fix}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise EngineError(f"{path} is not a usable ONNX model: {exc}") from exc
