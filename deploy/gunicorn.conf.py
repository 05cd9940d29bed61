"""gunicorn's settings for the portal's host app: the deployment guide's, and the test's.

Run: ``gunicorn -c deploy/gunicorn.conf.py "yourapp:create_app()"``. Every
process works alone: the portal keeps nothing in memory that another process
needs (sessions, links, rate limits, the test provider, mail: all in
PostgreSQL or Redis), so requests may land on any worker of any server.
"""

import os

# Behind nginx on the same machine; PORTAL_BIND overrides it.
bind = os.environ.get("PORTAL_BIND", "127.0.0.1:8000")
# Sync workers: two or three per core is a good start.
workers = int(os.environ.get("PORTAL_WORKERS", "3"))
worker_class = "sync"
# A request that takes longer than this is killed; provider calls time out sooner.
timeout = 30
graceful_timeout = 30
# Recycle workers now and then, so a slow leak never grows.
max_requests = 1000
max_requests_jitter = 100
# Each worker opens its own database connections after the fork.
preload_app = False
# No access log here: sign-in links carry their token in the path. nginx logs requests
# without it (see docs/deployment.md); errors go to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("PORTAL_LOG_LEVEL", "info")
# X-Forwarded-* headers are trusted from nginx only (and the portal's
# CUSTOMER_PORTAL_PROXY_HOPS tells Flask how many proxies to trust).
forwarded_allow_ips = "127.0.0.1"
