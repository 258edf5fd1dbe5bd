"""captcha-tui: teach a CNN to read text captchas and watch it learn in the terminal.

The Python API mirrors the command line::

    from captcha_tui import export_onnx, generate, prepare, train, Predictor
    generate("data/captchas", count=2000)
    prepare("data/captchas", "data/dataset")
    result = train(data="data/dataset", out="runs/demo", preset="fast", epochs=5)
    print(Predictor.load("runs/demo/best.pt").predict_image("data/captchas/00000-abcd.png").code)
    export_onnx("runs/demo/best.pt")  # runs/demo/best.onnx, which Predictor.load reads too
"""

__version__ = "0.2.0"

from .core.dataset import load_dataset, prepare  # noqa: E402
from .core.export import export_onnx  # noqa: E402
from .core.generator import generate  # noqa: E402
from .core.predictor import Predictor  # noqa: E402
from .core.train import TrainConfig, Trainer, train  # noqa: E402

__all__ = [
    "Predictor",
    "TrainConfig",
    "Trainer",
    "export_onnx",
    "generate",
    "load_dataset",
    "prepare",
    "train",
    "__version__",
]
