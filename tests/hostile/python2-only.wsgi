import sys
sys.path.insert(0, '@BLOG@/lib/python2.7')
import blogcore
print 'loaded blogcore', blogcore.__version__
try:
    import json
except ImportError, e:
    json = None


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [blogcore.__version__]
