"""gunicorn settings of the gateway: `GUNICORN_CMD_ARGS="--config python:app.gunicorn_conf"`.

Threads, not processes, carry the concurrency: requests mostly wait on the network (uploads,
downloads, MongoDB), and one process keeps one pool of connections.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A 2 GB upload on a slow link takes minutes; a thread busy with it is not a hung worker.
timeout = 600
graceful_timeout = 30
keepalive = 5
# Logs: gunicorn's access log goes to stderr; the app's own lines are JSON (core/logs.py).
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
