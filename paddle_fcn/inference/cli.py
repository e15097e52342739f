"""Command-line front ends of ``tools/predict.py`` and ``tools/export.py``.

Flags follow PaddleSeg (``--config``, ``--model_path``, ``--image_path``, ``--save_dir``,
``--is_slide``, ``--crop_size``, ``--stride``, ``--output_op``...); a flag that has a config key
overrides the YAML through the same type-checked path as ``--opts``.
"""
import argparse
import importlib.util
import os
import sys

from paddle_fcn.cli import add_test_config_args, test_config_opts

__all__ = ["predict_main", "export_main"]



def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    return 2


def _os_failure(save_dir, err):
    """Exit code 2 for an ``OSError``: usually ``--save_dir`` is unusable (an existing file,
    no permission, disk full); a file elsewhere (e.g. a list file) is named as unreadable."""
    reason = err.strerror or str(err)
    name = os.fspath(err.filename) if err.filename is not None else None
    root = os.path.abspath(save_dir)
    if name is None or os.path.commonpath([root, os.path.abspath(name)]) == root:
        detail = f" ({name})" if name and os.path.abspath(name) != root else ""
        return _fail(f"cannot write to {save_dir}: {reason}{detail}")
    return _fail(f"cannot read {name}: {reason}")


def _load_config(path, opts):
    from paddle_fcn.config import load_config

    return load_config(path, opts)


def _test_config_from_flags(args):
    """A validated ``TestConfig`` from the flags alone (exported model without --config)."""
    from paddle_fcn.config import ConfigError, TestConfig

    test = TestConfig(is_slide=bool(args.is_slide), crop_size=args.crop_size,
                      stride=args.stride or args.crop_size,
                      flip_horizontal=bool(args.flip_horizontal), scales=args.scales or [1.0])
    if test.is_slide and not test.crop_size:
        raise ConfigError("--is_slide needs --crop_size W H (and optionally --stride W H)")
    for name in ("crop_size", "stride"):
        value = getattr(test, name)
        if value is not None and (len(value) != 2 or min(value) < 1):
            raise ConfigError(f"--{name} must be two positive ints W H, got {value}")
    if test.is_slide and any(s > c for s, c in zip(test.stride, test.crop_size)):
        raise ConfigError(f"--stride {test.stride} exceeds --crop_size {test.crop_size}: "
                          f"pixels would be left unscored")
    if any(s <= 0 for s in test.scales):
        raise ConfigError(f"--scales must be positive, got {test.scales}")
    return test


def _predict_parser():
    p = argparse.ArgumentParser(description="Predict label maps (palette PNG masks + overlays).")
    p.add_argument("--config", help="the training YAML (required for a training checkpoint)")
    p.add_argument("--model_path", required=True,
                   help="model.pdparams, a best_model/ or iter_N/ directory, or a directory "
                        "written by tools/export.py")
    p.add_argument("--image_path", required=True,
                   help="an image, a folder of images, or a .txt list of image paths")
    p.add_argument("--save_dir", default="output/result")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"])
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="run at this precision (default: the export's deploy.yml; a checkpoint "
                        "is exported at it first, fp32 if not given)")
    add_test_config_args(p)
    p.add_argument("--with_legend", action="store_true",
                   help="also write image | mask | legend of class names")
    p.add_argument("--eager", action="store_true",
                   help="run a checkpoint as a dygraph model instead of the (faster) exported "
                        "Paddle Inference predictor")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE")
    return p


def _predict_setup(args):
    """``(cfg or None, test_cfg, device)`` from the flags."""
    if args.config:
        cfg = _load_config(args.config, list(args.opts) + test_config_opts(args))
        return cfg, cfg.test_config, args.device or cfg.device
    if args.opts:
        raise ValueError("--opts needs --config")
    return None, _test_config_from_flags(args), args.device or "auto"


def predict_main(argv=None):
    """``tools/predict.py``: returns the exit code: 0 all written, 1 some images could not be
    read (the others are written), 2 bad arguments, model or input path (nothing written)."""
    from paddle_fcn.config import ConfigError
    from paddle_fcn.data.io import DataError
    from paddle_fcn.inference.export import ExportError
    from paddle_fcn.inference.predict import PredictError, predict_images
    from paddle_fcn.inference.segmenter import load_segmenter
    from paddle_fcn.models.weights import WeightsError

    args = _predict_parser().parse_args(argv)
    try:
        cfg, test_cfg, device = _predict_setup(args)
        segmenter = load_segmenter(args.model_path, cfg, device, test_cfg, eager=args.eager,
                                   precision=args.precision)
        summary = predict_images(segmenter, args.image_path, args.save_dir, args.with_legend,
                                 progress=not args.no_progress)
    except (ConfigError, PredictError, ExportError, WeightsError, DataError, ValueError) as e:
        return _fail(e)
    except OSError as e:  # an unreadable image is a DataError (skipped); this is fatal
        return _os_failure(args.save_dir, e)
    print(f"{len(summary.written)} masks written to {args.save_dir} (pseudo_color_prediction/, "
          f"added_prediction/{', legend/' if args.with_legend else ''})")
    if summary.failed:
        print(f"{len(summary.failed)} image(s) could not be read (listed above)", file=sys.stderr)
    return 1 if summary.failed else 0


def _export_parser():
    p = argparse.ArgumentParser(description="Export a trained model for Paddle Inference.")
    p.add_argument("--config", required=True, help="the training YAML")
    p.add_argument("--model_path", required=True,
                   help="model.pdparams, a best_model/ or iter_N/ directory")
    p.add_argument("--save_dir", default="output/inference_model")
    p.add_argument("--output_op", choices=["none", "argmax", "softmax"],
                   help="appended to the graph (config: export.output_op; default none)")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="written into deploy.yml and checked on this machine: bf16 needs a CPU "
                        "with avx512_bf16/AMX (fp16 on GPU), int8 a GPU with TensorRT "
                        "(config: export.precision; default fp32)")
    p.add_argument("--calib_images", type=int,
                   help="int8: calibrate on this many training images (config: "
                        "export.calib_images; default 200)")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"],
                   help="where the export is checked at its precision (default: config)")
    p.add_argument("--onnx", action="store_true",
                   help="also write model.onnx (needs `pip install paddle2onnx`)")
    p.add_argument("--opset", type=int, default=11, help="ONNX opset version")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE")
    return p


def export_main(argv=None):
    """``tools/export.py``: returns the exit code."""
    from paddle_fcn.config import ConfigError
    from paddle_fcn.inference.export import ONNX_HINT, ExportError, export_model, export_onnx
    from paddle_fcn.inference.precision import calibration_images
    from paddle_fcn.engine.evaluate import load_trained_model
    from paddle_fcn.inference.segmenter import class_names_of
    from paddle_fcn.models.weights import WeightsError

    args = _export_parser().parse_args(argv)
    if args.onnx and importlib.util.find_spec("paddle2onnx") is None:
        return _fail(ONNX_HINT)
    flags = {"output_op": "export.output_op", "precision": "export.precision",
             "calib_images": "export.calib_images", "device": "device"}
    opts = list(args.opts) + [f"{key}={getattr(args, flag)}" for flag, key in flags.items()
                              if getattr(args, flag) is not None]
    try:
        cfg = _load_config(args.config, opts)
        ex = cfg.export
        model = load_trained_model(cfg, args.model_path)
        names = class_names_of(cfg, model.num_classes)
        calibration = calibration_images(cfg, model.normalization, ex.calib_images) \
            if ex.precision == "int8" else ()
        prefix = export_model(model, args.save_dir, ex.output_op, names, cfg.model.type,
                              ex.precision, cfg.device, calibration)
        onnx = export_onnx(args.save_dir, args.opset) if args.onnx else None
    except (ConfigError, ExportError, WeightsError, ValueError) as e:
        return _fail(e)
    except OSError as e:
        return _os_failure(args.save_dir, e)
    print(f"exported {cfg.model.type} ({model.num_classes} classes, output_op "
          f"{cfg.export.output_op}, precision {cfg.export.precision}) to {prefix}.* with "
          f"{args.save_dir}/deploy.yml"
          + (f"; ONNX: {onnx}" if onnx else ""))
    return 0
