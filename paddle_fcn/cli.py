"""Command-line front ends of ``tools/*.py``: argument parsing mapped onto the Config.

The flags are PaddleSeg's (``--config``, ``--iters``, ``--batch_size``, ``--learning_rate``,
``--save_dir``, ``--opts key=value``...). A flag given on the command line overrides the YAML
through the same type-checked path as ``--opts``.
"""
import argparse
import json
import os
import shlex
import sys

__all__ = ["train_main", "eval_main", "eval_metrics_path", "add_test_config_args",
           "test_config_opts"]

TEST_FLAGS = ("is_slide", "crop_size", "stride", "flip_horizontal", "scales")

# flag -> config key path; the flag's value goes through apply_opts (type-checked).
_TRAIN_FLAGS = {
    "iters": "iters", "batch_size": "batch_size", "learning_rate": "lr_scheduler.learning_rate",
    "save_dir": "save_dir", "save_interval": "save_interval", "seed": "seed", "device": "device",
    "num_workers": "num_workers", "keep_checkpoint_max": "keep_checkpoint_max",
    "log_iters": "log_iters", "accumulate_steps": "accumulate_steps",
    "eval_interval": "eval_interval",
}


def add_test_config_args(p):
    """Test-time inference flags (config section ``test_config``) of eval.py and predict.py."""
    p.add_argument("--is_slide", action="store_true", default=None,
                   help="sliding-window inference (for large images)")
    p.add_argument("--crop_size", type=int, nargs=2, metavar=("W", "H"), help="window size")
    p.add_argument("--stride", type=int, nargs=2, metavar=("W", "H"), help="window step")
    p.add_argument("--flip_horizontal", action="store_true", default=None,
                   help="average with the prediction of the mirrored image")
    p.add_argument("--scales", type=float, nargs="+", help="multi-scale inference, e.g. 0.75 1 1.25")


def test_config_opts(args):
    """The given test-time flags as ``test_config.*=value`` overrides (JSON is valid YAML)."""
    return [f"test_config.{name}={json.dumps(getattr(args, name))}" for name in TEST_FLAGS
            if getattr(args, name) is not None]


def user_errors():
    """The errors that describe bad input (data, weights, checkpoint, config), not a bug: the
    tools print their message (which names the file, key or value) without a traceback."""
    from paddle_fcn.config import ConfigError
    from paddle_fcn.data.io import DataError
    from paddle_fcn.engine.checkpoint import CheckpointError
    from paddle_fcn.models.weights import WeightsError
    return DataError, WeightsError, CheckpointError, ConfigError


def _load(args, flags):
    from paddle_fcn.config import ConfigError, load_config
    opts = list(args.opts or [])
    for flag, key in flags.items():
        value = getattr(args, flag, None)
        if value is not None:
            opts.append(f"{key}={value}")
    try:
        return load_config(args.config, opts)
    except (ConfigError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


def _train_parser():
    p = argparse.ArgumentParser(description="Train an FCN (one YAML = one experiment).")
    p.add_argument("--config", required=True, help="experiment YAML, e.g. configs/quickstart.yml")
    for flag in ("iters", "batch_size", "save_interval", "seed", "num_workers",
                 "keep_checkpoint_max", "log_iters", "accumulate_steps", "eval_interval"):
        p.add_argument(f"--{flag}", type=int)
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--save_dir")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"])
    p.add_argument("--resume_model", help="a checkpoint (iter_N) or a run directory (its newest)")
    p.add_argument("--do_eval", action="store_true", default=None,
                   help="evaluate during training (config: do_eval)")
    p.add_argument("--use_vdl", action="store_true", default=None,
                   help="log to VisualDL (config: use_vdl)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--skip_data_check", action="store_true",
                   help="don't read every file before training (tools/check_data.py does it)")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. train_dataset.dataset_root=/data/VOC2012")
    return p


def train_main(argv=None):
    """``tools/train.py``: returns the process exit code (0 done, 2 bad input, 3 diverged,
    130 / 143 stopped by Ctrl-C / SIGTERM)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _train_parser().parse_args(argv)
    flags = dict(_TRAIN_FLAGS, do_eval="do_eval", use_vdl="use_vdl")
    cfg = _load(args, flags)
    from paddle_fcn.engine.interrupt import EXIT_CODES
    from paddle_fcn.engine.trainer import TrainingDiverged, TrainingInterrupted, train
    try:
        summary = train(cfg, resume_model=args.resume_model, progress=not args.no_progress,
                        check_data=not args.skip_data_check)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except TrainingInterrupted as stop:
        if stop.rank == 0:
            print(_stopped_message(stop, cfg, argv), file=sys.stderr)
        return EXIT_CODES[stop.signum]
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    best = "n/a" if summary.best_mIoU is None else f"{summary.best_mIoU:.4f}"
    print(f"done: {summary.iterations} iterations in {summary.seconds:.0f} s; best mIoU {best} "
          f"(iter {summary.best_iter}); outputs in {summary.save_dir}")
    return 0


def _stopped_message(stop, cfg, argv):
    """One line: where the run stopped, what is on disk, the command that resumes it."""
    from paddle_fcn.engine.checkpoint import CheckpointError, find_latest
    done = "while starting" if stop.iteration is None else \
        f"after iteration {stop.iteration} of {cfg.iters}"
    try:
        latest = find_latest(cfg.save_dir) if os.path.isdir(cfg.save_dir) else None
    except CheckpointError:
        latest = None
    if latest is None:
        return (f"stopped by {stop}: {done}; no checkpoint written yet (save_interval = "
                f"{cfg.save_interval}): run the same command to start again")
    keep, skip = [], False
    for a in argv:  # the same command, with --resume_model pointing at the run
        if skip or a == "--resume_model" or a.startswith("--resume_model="):
            skip = a == "--resume_model"
            continue
        keep.append(a)
    command = shlex.join(["python", sys.argv[0], *keep, "--resume_model", cfg.save_dir])
    return (f"stopped by {stop}: {done}; last checkpoint {latest}; resume with: {command}")


def _eval_parser():
    p = argparse.ArgumentParser(description="Evaluate a trained FCN on the validation split.")
    p.add_argument("--config", required=True)
    p.add_argument("--model_path", required=True,
                   help="model.pdparams, a best_model/ or checkpoint directory, or an export "
                        "(tools/export.py: evaluated as deployed, through the Predictor)")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="evaluate the deployed form at this precision: the checkpoint is "
                        "exported at it and run by the Predictor (default: the eager model; "
                        "an export's own precision)")
    p.add_argument("--save_dir", help="write the metrics to SAVE_DIR/metrics.json (default: "
                   "eval_metrics.json next to the model). A metrics.json written by training "
                   "(it holds 'iteration') is never overwritten: eval_metrics.json is used then")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"])
    add_test_config_args(p)
    p.add_argument("--skip_data_check", action="store_true",
                   help="don't read every file before evaluating (tools/check_data.py does it)")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE")
    return p


def eval_main(argv=None):
    """``tools/eval.py``: prints the metrics table, writes the metrics JSON; exit code."""
    args = _eval_parser().parse_args(argv)
    args.opts = list(args.opts or []) + test_config_opts(args)
    cfg = _load(args, {"device": "device"})
    from paddle_fcn.engine.checkpoint import atomic_write_text
    from paddle_fcn.engine.evaluate import run_eval
    from paddle_fcn.inference import ExportError, PredictError, PrecisionError
    from paddle_fcn.inference.segmenter import is_export_dir, load_scorer
    try:
        deployed = None  # --precision or an export: the Predictor, as the model is shipped
        if args.precision or is_export_dir(args.model_path):
            deployed = load_scorer(args.model_path, cfg, cfg.device, args.precision)
        metrics = run_eval(cfg, args.model_path, check_data=not args.skip_data_check,
                           model=deployed)
    except user_errors() + (ExportError, PredictError, PrecisionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = eval_metrics_path(args.model_path, args.save_dir)
    atomic_write_text(json.dumps(metrics, indent=2), path)
    print(f"metrics written to {path}")
    return 0


def eval_metrics_path(model_path, save_dir=None):
    """Where ``tools/eval.py`` writes: ``save_dir/metrics.json``, else ``eval_metrics.json``
    in the model's directory; ``eval_metrics.json`` also wherever ``metrics.json`` is a
    training record (``best_model/metrics.json``, the run's ``metrics.json``: they hold
    ``iteration``), which must survive an evaluation."""
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
