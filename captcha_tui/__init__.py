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

# Imported on first use (PEP 562): `captcha-tui` starts from the light entry in __main__.py, so that a
# Ctrl+C while torch loads ends quietly instead of in a traceback from inside Python's import machinery.
_API = {
    "load_dataset": ".core.dataset",
    "prepare": ".core.dataset",
    "export_onnx": ".core.export",
    "generate": ".core.generator",
    "Predictor": ".core.predictor",
    "TrainConfig": ".core.train",
    "Trainer": ".core.train",
    "train": ".core.train",
}


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
