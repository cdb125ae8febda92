"""Set up ``sys.path`` the way an entry point gets it, inside the REAL target interpreter.

Run as ``pythonX.Y -S -s _bootstrap.py CONFIG.json`` (Python 2.7 and 3.x: keep this file
in their common subset). With ``-S`` the interpreter starts with only PYTHONPATH and the
stdlib; this script then does what site processing, the WebFaction interpreter and
mod_wsgi do, with the real ``site.addsitedir`` (so real .pth files run), puts the script
folder in front, and optionally loads the entry file itself. Then it reports:

* ``find``: for each requested top-level name, the file Python would import;
* ``trace``: every module that loading the entry file (and, for WSGI, serving one GET
  request) added to ``sys.modules``, with its file.

Used by ``plan --trace`` and by the test that proves the static path model right.
"""

import json
import site
import sys

from _probe import _module_file, origin  # this script's folder is sys.path[0] here


def main(argv):
    with open(argv[1]) as handle:
        config = json.load(handle)
    del sys.path[0]  # this script's own folder
    for directory in config.get("site_dirs", []):
        site.addsitedir(directory)
    # mod_wsgi's python-path: added as site dirs, then all they added moved to the front.
    before = list(sys.path)
    for directory in config.get("python_path", []):
        site.addsitedir(directory)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + [p for p in sys.path if p in before]
    if config.get("front"):
        sys.path.insert(0, config["front"])
    result = {"error": None}
    # What .pth files already imported belongs to the interpreter's set-up, not the app.
    before = set(sys.modules)
    entry = config.get("entry_file")
    if entry:
        try:
            namespace = _load(entry, config.get("kind", "script"))
            if config.get("request") and callable(namespace.get("application")):
                _serve_one(namespace["application"])
        except BaseException as exc:  # the app's own failure is data, not our crash
            result["error"] = "%s: %s" % (type(exc).__name__, exc)
    result["sys_path"] = list(sys.path)
    if config.get("action") == "find":
        result["origins"] = dict((name, origin(name)) for name in config.get("names", []))
    else:
        result["modules"] = dict(
            (name, path) for name, path in _modules().items() if name not in before
        )
    with open(config["output"], "w") as handle:
        json.dump(result, handle)


def _load(path, kind):
    """Execute the entry file as mod_wsgi or a cron run would; not as ``__main__``."""
    name = "_mod_wsgi_entry" if kind == "wsgi" else "__concentric_trace__"
    namespace = {"__file__": path, "__name__": name, "__builtins__": __builtins__}
    with open(path, "rb") as handle:
        code = compile(handle.read(), path, "exec")
    exec(code, namespace)
    return namespace


def _serve_one(application):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": _EmptyInput(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": True,
    }
    body = application(environ, lambda status, headers, exc_info=None: None)
    try:
        for _chunk in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close:
            close()


class _EmptyInput(object):
    def read(self, *args):
        return b""

    def readline(self, *args):
        return b""


def _modules():
    out = {}
    for name, module in list(sys.modules.items()):
        if module is None:
            continue
        out[name] = _module_file(module)
    return out


if __name__ == "__main__":
    main(sys.argv)
