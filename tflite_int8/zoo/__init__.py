"""Models whose weights ship inside installed packages (nothing is downloaded), the reference detector with its
generated dataset, and the demo.  ``tflite_int8.zoo:efficientnet_lite0`` and ``tflite_int8.zoo:mobilenet_v2``
name them on the command line."""
from .models import DEMO_MODEL, efficientnet_lite0, mobilenet_v2

__all__ = ["DEMO_MODEL", "efficientnet_lite0", "mobilenet_v2"]
