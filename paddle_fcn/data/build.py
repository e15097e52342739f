"""Data sets by config: the types, what each takes, and ``build_dataset``.

``DATASETS`` maps a config ``type`` to its class; everything about a type (its splits
``MODES``, its options and their values ``CHOICES``, its class names ``CLASSES`` and
``labels.txt``) lives on the class, and this module reads it from there: for building
(``build_dataset``), for checking a config before anything is built (``config_problems``) and
for naming the classes of a model whose data is not on this machine (``dataset_class_names``).
"""
import inspect

from paddle_fcn.data.ade20k import ADE20K
from paddle_fcn.data.cityscapes import Cityscapes
from paddle_fcn.data.context import PascalContext
from paddle_fcn.data.nyud import NYUDv2
from paddle_fcn.data.siftflow import SIFTFlow
from paddle_fcn.data.synthetic import PRESETS, SyntheticVOC
from paddle_fcn.data.transforms import build_transforms, spec_problem
from paddle_fcn.data.voc import IGNORE_INDEX, ListDataset, PascalVOC, _resolve_class_names
from paddle_fcn.errors import DataError, Problem

__all__ = ["DATASETS", "build_dataset", "config_problems", "dataset_class_names"]

DATASETS = {cls.__name__: cls for cls in (
    SyntheticVOC, PascalVOC, ListDataset, PascalContext, Cityscapes, ADE20K, SIFTFlow, NYUDv2)}
# constructor arguments every type takes; the others are the type's own options
_COMMON = ("dataset_root", "mode", "transforms", "num_classes", "class_names", "ignore_index")
# dataset config keys that are no constructor argument
_CONFIG_ONLY = ("type",)


def _field(ds_cfg, key, default=None):
    """``key`` of a dataset config: a dataclass, a namespace or a dict."""
    if isinstance(ds_cfg, dict):
        return ds_cfg.get(key, default)
    return getattr(ds_cfg, key, default)


def _options(cls):
    """The type's own constructor options: name -> default."""
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and k not in _COMMON}


def _given(value):
    """Whether a config value sets an option (not left at None, False or a default section)."""
    return value is not None and value is not False and not _is_default_section(value)


def config_problems(ds_cfg, all_options=()):
    """``Problem``s of one dataset config section: an unknown type, a mode the type does not
    have, an option of another type, an option value the type does not allow, a transform
    that cannot be built (``Normalize`` included: it comes from the model's normalization).
    ``all_options``: the option keys the section has (each type reads its own)."""
    kind = _field(ds_cfg, "type")
    if kind not in DATASETS:
        return [Problem("type", f"expected one of {', '.join(DATASETS)}; got {kind!r}", kind,
                        tuple(DATASETS))]
    cls = DATASETS[kind]
    problems = _choice_problems(ds_cfg, cls, all_options)
    for i, spec in enumerate(_field(ds_cfg, "transforms") or ()):
        problem = spec_problem(spec)
        if problem is None and spec.get("type") == "Normalize":
            problem = Problem("", "remove this Normalize: it is appended automatically from "
                                  "the model's normalization (it comes with the weights, or "
                                  "model.normalization), which export and predict use as well")
        if problem is not None:
            problems.append(problem._replace(key=f"transforms[{i}]" + (
                "." + problem.key if problem.key else "")))
    return problems


def _choice_problems(ds_cfg, cls, all_options):
    """Mode, the type's option values (its CHOICES; a synthetic preset), and options that
    belong to other types."""
    checks = [("mode", _field(ds_cfg, "mode"), tuple(cls.MODES))]
    checks += [(k, _field(ds_cfg, k), tuple(v)) for k, v in cls.CHOICES.items()]
    if cls is SyntheticVOC:
        checks.append(("synthetic.preset", _field(_field(ds_cfg, "synthetic") or {}, "preset"),
                       tuple(PRESETS)))
    problems = [Problem(key, f"expected one of {', '.join(allowed)}; got {value!r}", value,
                        allowed)
                for key, value, allowed in checks if value is not None and value not in allowed]
    own = _options(cls)
    for key in all_options:
        value = _field(ds_cfg, key)
        if key not in own and _given(value):
            takers = [n for n, c in DATASETS.items() if key in _options(c)]
            problems.append(Problem(key, f"applies to type {', '.join(takers)} only, not "
                                         f"{cls.__name__}"))
    return problems


def _given_keys(ds_cfg):
    """The option keys a dataset config (a dict, or a dataclass with every key) has."""
    keys = ds_cfg if isinstance(ds_cfg, dict) else getattr(ds_cfg, "__dict__", {})
    return [k for k in keys if k not in _COMMON and k not in _CONFIG_ONLY]


def _is_default_section(value):
    """A nested section left at its defaults (``synthetic`` under a non-synthetic type)."""
    return hasattr(value, "__dataclass_fields__") and value == type(value)()


def build_dataset(ds_cfg, normalization=None, num_classes=None):
    """Build the dataset described by a dataset config (dataclass, namespace or dict).

    Reads ``type`` (a key of ``DATASETS``), ``dataset_root``, ``mode``, ``num_classes``,
    ``class_names``, ``ignore_index``, ``transforms`` (specs, see ``build_transforms``) and the
    type's own options (``file_list``, ``synthetic``, ``head``...). ``normalization``: the
    model's (None -> ImageNet), for the appended ``Normalize``. ``num_classes`` (e.g. the
    model's) must agree with the config's when both are set.
    """
    kind = _field(ds_cfg, "type")
    if kind not in DATASETS:
        raise DataError(f"unknown dataset type {kind!r}; valid types: {', '.join(DATASETS)}")
    cfg_classes = _field(ds_cfg, "num_classes")
    if cfg_classes is not None and num_classes is not None and cfg_classes != num_classes:
        raise DataError(f"dataset num_classes={cfg_classes} but the model has num_classes="
                        f"{num_classes}; make them agree")
    if not _field(ds_cfg, "dataset_root"):
        raise DataError(f"dataset of type {kind} needs dataset_root")
    ignore = _field(ds_cfg, "ignore_index")
    ignore = IGNORE_INDEX if ignore is None else ignore
    cls = DATASETS[kind]
    problems = _choice_problems(ds_cfg, cls, _given_keys(ds_cfg))
    if problems:
        raise DataError(f"dataset {kind}: {problems[0].key} {problems[0].message}")
    args = dict(dataset_root=_field(ds_cfg, "dataset_root"),
                transforms=build_transforms(_field(ds_cfg, "transforms"), normalization, ignore),
                num_classes=cfg_classes if cfg_classes is not None else num_classes,
                class_names=_field(ds_cfg, "class_names"), ignore_index=ignore)
    if "mode" in inspect.signature(cls.__init__).parameters:
        args["mode"] = _field(ds_cfg, "mode") or "train"
    for key, default in _options(cls).items():
        value = _field(ds_cfg, key)
        if value is None and default is inspect.Parameter.empty:
            raise DataError(f"dataset of type {kind} needs {key}")
        if value is not None:
            args[key] = value
    return cls(**args)


def dataset_class_names(ds_cfg, num_classes):
    """The class names a data set built from ``ds_cfg`` has, without reading its files (an
    export or prediction may run where the data is not): the config's ``class_names``, else
    the type's ``labels.txt`` under ``dataset_root`` if it is there, else the type's own
    names; ``class_i`` when none of them has ``num_classes`` names."""
    cls = DATASETS.get(_field(ds_cfg, "type"))
    if cls is None:
        return [f"class_{i}" for i in range(num_classes)]
    default = cls.CLASSES
    if cls is SyntheticVOC:
        preset = _field(_field(ds_cfg, "synthetic") or {}, "preset") or "shapes"
        default = PRESETS.get(preset, (None,))[0]
    root = _field(ds_cfg, "dataset_root")
    try:
        return _resolve_class_names(num_classes, _field(ds_cfg, "class_names"),
                                    cls.labels_file(root) if root else None, default)[1]
    except DataError:  # names that do not fit num_classes
        return [f"class_{i}" for i in range(num_classes)]
