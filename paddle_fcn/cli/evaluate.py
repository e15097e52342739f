"""``paddle-fcn eval`` / ``tools/eval.py``: the paper's four metrics on the validation split."""
import argparse
import json
import os

from paddle_fcn.cli.common import (USER_ERRORS, add_test_config_args, fail, load_from_args,
                                   test_config_opts)
from paddle_fcn.config import CHOICES, resolve_num_classes
from paddle_fcn.data import build_dataset, check_dataset
from paddle_fcn.device import setup_device
from paddle_fcn.engine.evaluate import evaluate, metrics_dict
from paddle_fcn.errors import ConfigError
from paddle_fcn.fileio import atomic_write_text
from paddle_fcn.inference.segmenter import is_export_dir, load_scorer
from paddle_fcn.models.loading import load_trained_model

__all__ = ["eval_main", "run_eval", "eval_metrics_path"]


def _eval_parser():
    p = argparse.ArgumentParser(description="Evaluate a trained FCN on the validation split.")
    p.add_argument("--config", required=True)
    p.add_argument("--model_path", required=True,
                   help="model.pdparams, a best_model/ or checkpoint directory, or an export "
                        "(tools/export.py: evaluated as deployed, through the Predictor)")
    p.add_argument("--precision", choices=CHOICES["export.precision"],
                   help="evaluate the deployed form at this precision: the checkpoint is "
                        "exported at it and run by the Predictor (default: the eager model; "
                        "an export's own precision)")
    p.add_argument("--save_dir", help="write the metrics to SAVE_DIR/metrics.json (default: "
                   "eval_metrics.json next to the model). A metrics.json written by training "
                   "(it holds 'iteration') is never overwritten: eval_metrics.json is used then")
    p.add_argument("--device", choices=CHOICES["device"])
    add_test_config_args(p)
    p.add_argument("--skip_data_check", action="store_true",
                   help="don't read every file before evaluating (tools/check_data.py does it)")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE")
    return p


def eval_main(argv=None):
    """Prints the metrics table, writes the metrics JSON; returns the exit code."""
    args = _eval_parser().parse_args(argv)
    args.opts = list(args.opts or []) + test_config_opts(args)
    cfg = load_from_args(args, {"device": "device"})
    try:
        deployed = None  # --precision or an export: the Predictor, as the model is shipped
        if args.precision or is_export_dir(args.model_path):
            deployed = load_scorer(args.model_path, cfg, cfg.device, args.precision)
        metrics = run_eval(cfg, args.model_path, check_data=not args.skip_data_check,
                           model=deployed)
    except USER_ERRORS as e:
        return fail(e)
    path = eval_metrics_path(args.model_path, args.save_dir)
    atomic_write_text(json.dumps(metrics, indent=2), path)
    print(f"metrics written to {path}")
    return 0


def run_eval(cfg, model_path, check_data=True, model=None):
    """Evaluate ``model_path`` on ``cfg.val_dataset``, print the four metrics and the
    per-class IoU table; returns the metrics dict.

    ``model``: evaluate this instead of the eager model of ``model_path`` (a callable
    ``N x 3 x H x W -> N x C x H x W`` scores with ``normalization``, e.g. an exported model
    run by the Predictor at some precision: ``inference.segmenter.load_scorer``). With
    ``check_data`` every file is read once first (``check_dataset``): bad labels stop the run
    with a DataError listing the files before any image is scored.
    """
    if cfg.val_dataset is None:
        raise ConfigError("val_dataset: the config has none to evaluate on")
    setup_device(cfg.device, cfg.cpu_threads)
    num_classes = resolve_num_classes(cfg, None)
    if model is None:
        model, _ = load_trained_model(cfg.model, num_classes, model_path)
    dataset = build_dataset(cfg.val_dataset, model.normalization, num_classes)
    if check_data:
        check_dataset(dataset, num_classes).raise_if_failed()
    result = evaluate(model, dataset, num_classes, cfg.test_config,
                      ignore_index=cfg.val_dataset.ignore_index)
    for name, metrics in (result.heads or {None: result.metrics}).items():
        if name is not None:
            print(f"head {name}:")
        print(metrics.format_table(dataset.head_class_names[name] if name else
                                   dataset.class_names))
    print(f"{len(dataset)} images in {result.seconds:.1f} s")
    return metrics_dict(result, dataset)


def eval_metrics_path(model_path, save_dir=None):
    """Where eval writes: ``save_dir/metrics.json``, else ``eval_metrics.json`` in the model's
    directory; ``eval_metrics.json`` also wherever ``metrics.json`` is a training record
    (``best_model/metrics.json``, the run's ``metrics.json``: they hold ``iteration``), which
    must survive an evaluation."""
    if save_dir:
        path = os.path.join(save_dir, "metrics.json")
        return os.path.join(save_dir, "eval_metrics.json") if _training_record(path) else path
    model_dir = model_path if os.path.isdir(model_path) else os.path.dirname(
        os.path.abspath(model_path))
    return os.path.join(model_dir, "eval_metrics.json")


def _training_record(path):
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and "iteration" in saved
