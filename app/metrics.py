"""Prometheus metrics of the gateway, served on METRICS_PORT (never through the Ingress)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Count requests, latency and uploads of the app."""
