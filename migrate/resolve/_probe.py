"""What a real runtime's interpreter sees: its ``sys.path`` and where names would load from.

Runs inside the runtime itself - as a WSGI file served by the app's own mod_wsgi, or as the
script a cron job or start script runs - so nothing here is emulated: the path is the one
the runtime built. Python 2.7 and 3.x: keep this file in their common subset, and
self-contained (mod_wsgi loads a copy of it from a temporary folder, with the line
``CONFIG_FILE = "..."`` put in front).

The config (JSON) names ``names`` to locate (top-level, without importing them) and an
``output`` file for the report. A script probe runs from elsewhere, started with ``-S``:
``argv0`` and ``script_dir`` are the real script's ``sys.argv[0]`` and folder, set before
the interpreter's own site start-up runs, so what site derives from them is as it would be.
"""

import json
import os
import sys

CONFIG_FILE = globals().get("CONFIG_FILE")


def report(config):
    if config.get("argv0"):  # started with -S in place of the real script: start up as it
        sys.argv[0] = config["argv0"]
        sys.path[0] = config["script_dir"]
        import site

        site.main()
    return {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "version": "%d.%d" % sys.version_info[:2],
        "sys_path": list(sys.path),
        "origins": dict((name, origin(name)) for name in config.get("names", [])),
    }


def origin(name):
    """The file ``import name`` would load (a folder for a namespace package), or None."""
    module = sys.modules.get(name)
    if module is not None:
        return _module_file(module)
    try:
        import importlib.util

        spec = importlib.util.find_spec(name)
    except ImportError:
        return _origin_py2(name)
    except (ValueError, AttributeError):
        return None
    if spec is None:
        return None
    if spec.origin in (None, "namespace"):
        locations = list(spec.submodule_search_locations or [])
        return locations[0] if locations else None
    if spec.origin == "frozen":  # a frozen stdlib module (3.11+) names its source file
        return getattr(spec.loader_state, "filename", None) or "built-in"
    if spec.origin == "built-in":
        return "built-in"
    return spec.origin


def _origin_py2(name):
    import pkgutil

    try:
        loader = pkgutil.find_loader(name)
    except ImportError:
        return None
    if loader is None:
        return None
    get_filename = getattr(loader, "get_filename", None)
    if get_filename is None:
        return "built-in"
    try:
        return get_filename(name)
    except ImportError:
        return None


def _module_file(module):
    filename = getattr(module, "__file__", None)
    if filename:
        return filename
    path = list(getattr(module, "__path__", None) or [])
    return path[0] if path else "built-in"


def _load(path):
    with open(path) as handle:
        return json.load(handle)


def application(environ, start_response):
    """mod_wsgi's entry: the report as the response body."""
    body = json.dumps(report(_load(CONFIG_FILE))).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


if __name__ == "__main__":
    _config = _load(sys.argv[1])
    with open(_config["output"], "w") as _out:
        json.dump(report(_config), _out)
    os._exit(0)  # nothing of the account's atexit hooks
