"""Issue 7's benchmark: bare ffmpeg, the course's moviepy approach and this service, side by side.

`make bench` (= `.venv/bin/python -m bench`) generates its inputs once into bench/out/inputs,
starts a real stack (SecantusDB, a RabbitMQ vhost, aiosmtpd, the gunicorn gateway, celery
workers) with the test harness of tests/support/servers.py, measures, and writes bench/RESULTS.md
and bench/realtime.png. `--quick` uses short inputs and one run: for developing the benchmark, not
for its figures (it writes bench/out/RESULTS-quick.md instead).
"""
