"""``paddle-fcn train`` / ``tools/train.py``: train one experiment (one YAML)."""
import argparse
import os
import shlex
import sys

from tqdm import tqdm

from paddle_fcn.cli.common import USER_ERRORS, fail, load_from_args
from paddle_fcn.config import CHOICES
from paddle_fcn.engine.checkpoint import find_latest
from paddle_fcn.engine.interrupt import EXIT_CODES
from paddle_fcn.engine.trainer import TrainingDiverged, TrainingInterrupted, train
from paddle_fcn.errors import CheckpointError

__all__ = ["train_main"]

# flag -> config key path; the flag's value goes through apply_opts (type-checked).
_TRAIN_FLAGS = {
    "iters": "iters", "batch_size": "batch_size", "learning_rate": "lr_scheduler.learning_rate",
    "save_dir": "save_dir", "save_interval": "save_interval", "seed": "seed", "device": "device",
    "num_workers": "num_workers", "keep_checkpoint_max": "keep_checkpoint_max",
    "log_iters": "log_iters", "accumulate_steps": "accumulate_steps",
    "eval_interval": "eval_interval", "do_eval": "do_eval", "use_vdl": "use_vdl",
    "precision": "precision", "amp_level": "amp_level",
}


def _train_parser():
    p = argparse.ArgumentParser(description="Train an FCN (one YAML = one experiment).")
    p.add_argument("--config", required=True, help="experiment YAML, e.g. configs/quickstart.yml")
    for flag in ("iters", "batch_size", "save_interval", "seed", "num_workers",
                 "keep_checkpoint_max", "log_iters", "accumulate_steps", "eval_interval"):
        p.add_argument(f"--{flag}", type=int)
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--save_dir")
    p.add_argument("--device", choices=CHOICES["device"])
    p.add_argument("--precision", choices=CHOICES["precision"],
                   help="mixed-precision training on a GPU (config: precision; default fp32)")
    p.add_argument("--amp_level", choices=CHOICES["amp_level"],
                   help="fp16/bf16: O1 casts the listed ops, O2 the whole net (config: amp_level)")
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


def train_main(argv=None, command=None):
    """Returns the process exit code (0 done, 2 bad input, 3 diverged, 130 / 143 stopped by
    Ctrl-C / SIGTERM). ``command``: how the user started it, for the resume line (default
    ``python <script>``; ``paddle-fcn train`` for the entry point)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command or ["python", sys.argv[0]]
    args = _train_parser().parse_args(argv)
    cfg = load_from_args(args, _TRAIN_FLAGS)
    try:
        summary = train(cfg, resume_model=args.resume_model, progress=not args.no_progress,
                        check_data=not args.skip_data_check, log=tqdm.write)
    except TrainingDiverged as e:
        fail(e)
        return 3
    except TrainingInterrupted as stop:
        if stop.rank == 0:
            print(_stopped_message(stop, cfg, command + argv), file=sys.stderr)
        return EXIT_CODES[stop.signum]
    except USER_ERRORS as e:
        return fail(e)
    best = "n/a" if summary.best_mIoU is None else f"{summary.best_mIoU:.4f}"
    print(f"done: {summary.iterations} iterations in {summary.seconds:.0f} s; best mIoU {best} "
          f"(iter {summary.best_iter}); outputs in {summary.save_dir}")
    return 0


def _stopped_message(stop, cfg, typed):
    """One line: where the run stopped, what is on disk, the command that resumes it
    (``typed``: the command as typed, whose ``--resume_model`` is replaced)."""
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
    for a in typed:  # the same command, with --resume_model pointing at the run
        if skip or a == "--resume_model" or a.startswith("--resume_model="):
            skip = a == "--resume_model"
            continue
        keep.append(a)
    command = shlex.join([*keep, "--resume_model", cfg.save_dir])
    return (f"stopped by {stop}: {done}; last checkpoint {latest}; resume with: {command}")
