"""When verification fails: accuracy-recovery strategies (a table, tried in order of cost) that keep the model
full-integer, on ONNX weights (bias correction, weight rounding).  Entry: :func:`recover`."""
from .strategies import STRATEGIES, RecoveryResult, Strategy, recover

__all__ = ["STRATEGIES", "RecoveryResult", "Strategy", "recover"]
