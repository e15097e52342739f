"""``paddle-fcn predict`` / ``tools/predict.py`` and ``paddle-fcn export`` / ``tools/export.py``.

Flags follow PaddleSeg (``--config``, ``--model_path``, ``--image_path``, ``--save_dir``,
``--is_slide``, ``--crop_size``, ``--stride``, ``--output_op``...); a flag that has a config key
overrides the YAML through the same type-checked path as ``--opts``.
"""
import argparse
import importlib.util
import sys

from tqdm import tqdm

from paddle_fcn.cli.common import (USER_ERRORS, add_test_config_args, fail, load_experiment,
                                   os_failure, test_config_from_flags, test_config_opts)
from paddle_fcn.config import CHOICES, resolve_num_classes
from paddle_fcn.errors import ConfigError
from paddle_fcn.inference.export import ONNX_HINT, export_model, export_onnx
from paddle_fcn.inference.precision import calibration_images
from paddle_fcn.inference.predict import predict_images
from paddle_fcn.inference.segmenter import class_names_of, load_segmenter
from paddle_fcn.models.loading import load_trained_model

__all__ = ["predict_main", "export_main"]
# predict and export also report ValueErrors of their arguments (an image list, a size) as
# bad input
_BAD_INPUT = USER_ERRORS + (ValueError,)



def _to_stderr(message):
    tqdm.write(message, file=sys.stderr)


def _predict_parser():
    p = argparse.ArgumentParser(description="Predict label maps (palette PNG masks + overlays).")
    p.add_argument("--config", help="the training YAML (required for a training checkpoint)")
    p.add_argument("--model_path", required=True,
                   help="model.pdparams, a best_model/ or iter_N/ directory, or a directory "
                        "written by tools/export.py")
    p.add_argument("--image_path", required=True,
                   help="an image, a folder of images, or a .txt list of image paths")
    p.add_argument("--save_dir", default="output/result")
    p.add_argument("--device", choices=CHOICES["device"])
    p.add_argument("--precision", choices=CHOICES["export.precision"],
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
        cfg = load_experiment(args.config, list(args.opts) + test_config_opts(args))
        return cfg, cfg.test_config, args.device or cfg.device
    if args.opts:
        raise ConfigError("--opts needs --config")
    return None, test_config_from_flags(args), args.device or "auto"


def predict_main(argv=None):
    """``tools/predict.py``: returns the exit code: 0 all written, 1 some images could not be
    read (the others are written), 2 bad arguments, model or input path (nothing written)."""
    args = _predict_parser().parse_args(argv)
    try:
        cfg, test_cfg, device = _predict_setup(args)
        segmenter = load_segmenter(args.model_path, cfg, device, test_cfg, eager=args.eager,
                                   precision=args.precision)
        summary = predict_images(segmenter, args.image_path, args.save_dir, args.with_legend,
                                 progress=not args.no_progress, log=_to_stderr)
    except _BAD_INPUT as e:
        return fail(e)
    except OSError as e:  # an unreadable image is a DataError (skipped); this is fatal
        return os_failure(args.save_dir, e)
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
    p.add_argument("--output_op", choices=CHOICES["export.output_op"],
                   help="appended to the graph (config: export.output_op; default none)")
    p.add_argument("--precision", choices=CHOICES["export.precision"],
                   help="written into deploy.yml and checked on this machine: bf16 needs a CPU "
                        "with avx512_bf16/AMX (fp16 on GPU); int8 calibrates on training "
                        "images (oneDNN int8 on CPU, TensorRT on GPU) (config: "
                        "export.precision; default fp32)")
    p.add_argument("--calib_images", type=int,
                   help="int8: calibrate on this many training images (config: "
                        "export.calib_images; default 200)")
    p.add_argument("--device", choices=CHOICES["device"],
                   help="where the export is checked at its precision (default: config)")
    p.add_argument("--onnx", action="store_true",
                   help="also write model.onnx (needs `pip install paddle2onnx`)")
    p.add_argument("--opset", type=int, default=11, help="ONNX opset version")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE")
    return p


def export_main(argv=None):
    """``tools/export.py``: returns the exit code."""
    args = _export_parser().parse_args(argv)
    if args.onnx and importlib.util.find_spec("paddle2onnx") is None:
        return fail(ONNX_HINT)
    flags = {"output_op": "export.output_op", "precision": "export.precision",
             "calib_images": "export.calib_images", "device": "device"}
    opts = list(args.opts) + [f"{key}={getattr(args, flag)}" for flag, key in flags.items()
                              if getattr(args, flag) is not None]
    try:
        cfg = load_experiment(args.config, opts)
        ex = cfg.export
        model, _ = load_trained_model(cfg.model, resolve_num_classes(cfg, None),
                                      args.model_path)
        names = class_names_of(cfg, model.num_classes)
        calibration = ()
        if ex.precision == "int8":
            print(f"int8: calibrating on up to {ex.calib_images} training images (two passes "
                  f"of post-training quantization: up to an hour for VGG16 on VOC photos on a "
                  f"2-core CPU; --calib_images sets the count)", flush=True)
            calibration = calibration_images(cfg, model.normalization, ex.calib_images)
        prefix = export_model(model, args.save_dir, ex.output_op, names, cfg.model.type,
                              ex.precision, cfg.device, calibration)
        onnx = export_onnx(args.save_dir, args.opset) if args.onnx else None
    except _BAD_INPUT as e:
        return fail(e)
    except OSError as e:
        return os_failure(args.save_dir, e)
    print(f"exported {cfg.model.type} ({model.num_classes} classes, output_op "
          f"{cfg.export.output_op}, precision {cfg.export.precision}) to {prefix}.* with "
          f"{args.save_dir}/deploy.yml"
          + (f"; ONNX: {onnx}" if onnx else ""))
    return 0
