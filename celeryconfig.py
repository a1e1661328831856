"""Every Celery setting of the service, read by `tasks` with `config_from_object("celeryconfig")`.

Values come from the environment through core.settings, so the gateway (which publishes) and the
workers (which consume) always agree on the broker, the queues and the limits.
"""

from kombu import Exchange, Queue

from core.settings import load_settings

_settings = load_settings()

broker_url = _settings.broker_url
if broker_url.startswith("filesystem://"):
    # kombu's filesystem transport keeps each message as a file: `make up` needs no broker server.
    _folder = _settings.data_dir / "broker"
    _control = _settings.data_dir / "broker-control"
    # The transport expects its folders to exist; whoever starts first makes them.
    for _path in (_folder, _control):
        _path.mkdir(parents=True, exist_ok=True)
    broker_transport_options = {
        "data_folder_in": str(_folder),
        "data_folder_out": str(_folder),
        "control_folder": str(_control),
        "store_processed": False,
    }
else:
    broker_transport_options = {
        # Publisher confirms: apply_async returns only once RabbitMQ has taken the message.
        "confirm_publish": True,
    }
# A broker that is down must turn into a 503 within seconds, not a request that hangs.
broker_connection_timeout = 3
broker_connection_retry_on_startup = True
broker_heartbeat = 30
task_publish_retry = True
task_publish_retry_policy = {
    "max_retries": 2,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 1,
}

# JSON only: a message is data, never a pickle that could run code in the worker.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
# Job state lives in MongoDB's `jobs` collection; Celery's own results would be a second copy.
task_ignore_result = True

# At-least-once: a message is acknowledged only after its task ends, and requeued when the
# process running it dies; the tasks make a second run harmless (see tasks/convert.py).
task_acks_late = True
task_reject_on_worker_lost = True
# One message at a time per process: a long conversion never holds others hostage in its prefetch.
worker_prefetch_multiplier = 1
# With late acks, a task still running when the connection drops will be redelivered anyway;
# cancelling it at once avoids two workers converting the same job.
worker_cancel_long_running_tasks_on_connection_loss = True

# Limits: ffmpeg is stopped at CONVERT_TIME_LIMIT by the task itself; these are the backstop,
# and stay below RabbitMQ's consumer_timeout (30 min by default, 60 min in k8s/).
task_soft_time_limit = _settings.convert_time_limit + 30
task_time_limit = _settings.convert_time_limit + 60
# A worker process is replaced after this many tasks, or once it has grown past 200 MB.
worker_max_tasks_per_child = 200
worker_max_memory_per_child = 200_000  # KiB

_exchange = Exchange("mp3", type="direct", durable=True)
_dead = Exchange("mp3.dead", type="direct", durable=True)


def _queue(name: str) -> Queue:
    # A message rejected for good (a poison video) is dead-lettered to `<name>.dead`, not lost.
    return Queue(
        name,
        _exchange,
        routing_key=name,
        durable=True,
        queue_arguments={"x-dead-letter-exchange": _dead.name, "x-dead-letter-routing-key": name},
    )


task_queues = (_queue("convert"), _queue("notify"))
#: Declared by the worker at start-up so that nothing dead-lettered is dropped.
dead_letter_queues = (
    Queue("convert.dead", _dead, routing_key="convert", durable=True),
    Queue("notify.dead", _dead, routing_key="notify", durable=True),
)
task_default_queue = "convert"
task_default_exchange = _exchange.name
task_routes = {
    "tasks.convert.*": {"queue": "convert", "routing_key": "convert"},
    "tasks.notify.*": {"queue": "notify", "routing_key": "notify"},
    "tasks.maintenance.*": {"queue": "notify", "routing_key": "notify"},
}

# Events let Flower show workers, tasks and the conversion's progress.
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True
# The service configures its own JSON logging (core/logs.py).
worker_hijack_root_logger = False
worker_redirect_stdouts = False

beat_schedule = {
    "sweep": {"task": "tasks.maintenance.sweep", "schedule": 3600.0},
}
timezone = "UTC"
