"""ConfigError and the helpers that word it: which source a key came from, did-you-mean hints.

Every message has the form ``<source>: <key>: <what was expected>``, where the source is the
YAML file, or ``--opts`` when an override set the key (or one of its parents or children).
"""
import difflib

from paddle_fcn.errors import ConfigError

__all__ = ["ConfigError", "Source", "fail", "check", "hint", "describe", "unknown_key",
           "no_base"]


class Source:
    """Error prefix for a key: ``--opts`` if an override set it (or a parent), else the file."""

    def __init__(self, path, opt_keys=()):
        self.path, self.opt_keys = str(path), tuple(opt_keys)

    def __call__(self, key):
        def under(a, b):
            return a == b or a.startswith(b + ".") or a.startswith(b + "[")

        return "--opts" if any(under(key, k) or under(k, key) for k in self.opt_keys) else self.path


def fail(src, key, message):
    raise ConfigError(f"{src(key)}: {key}: {message}" if key else f"{src(key)}: {message}")


def check(ok, src, key, message):
    if not ok:
        fail(src, key, message)


def hint(word, valid, prefix=""):
    """"did you mean 'x'? " for the closest valid word, or an empty string."""
    close = difflib.get_close_matches(str(word), list(valid), n=1)
    return f"did you mean '{prefix}{close[0]}'? " if close else ""


def describe(value):
    """``value`` for a message: its type and a repr cut to 60 characters (``null`` for None)."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return "null" if value is None else f"{type(value).__name__} {text}"


def unknown_key(src, prefix, key, valid):
    suggestion = hint(key, valid, prefix).rstrip() or f"valid keys: {', '.join(valid)}"
    where = f"'{prefix}{key}'" if prefix else f"'{key}' at top level"
    raise ConfigError(f"{src(prefix + str(key))}: unknown key {where}; {suggestion}")


def no_base(src):
    raise ConfigError(f"{src('_base_')}: _base_ is not supported: one YAML = one complete "
                      "experiment (no inheritance chains); copy the keys you need into this file")
