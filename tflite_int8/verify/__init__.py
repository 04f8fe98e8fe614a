"""Is the int8 model as good as the float one: parity ladder over engines, task metrics, per-layer diagnosis,
report.json/report.html.  Entry: :func:`verify`."""
from .core import VerifyResult, verify

__all__ = ["VerifyResult", "verify"]
