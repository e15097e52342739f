"""paddle_fcn: Fully Convolutional Networks (Long, Shelhamer, Darrell) in PaddlePaddle."""
from paddle_fcn import runtime as _runtime

_runtime.configure()  # must run before the first `import paddle`
_runtime.import_paddle()

from paddle_fcn.models import MODELS, build_model, convolutionalize  # noqa: E402

__version__ = "0.1.0"
__all__ = ["MODELS", "build_model", "convolutionalize", "__version__"]
