import sys
sys.path.insert(0, '@BLOG@/lib/python@PY@')
import blogcore, shared


def application(environ, start_response:
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [blogcore.__version__.encode()]
