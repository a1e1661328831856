"""The web page at GET /: log in, drop videos, watch them convert, play and download the MP3s."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Register the page's routes on the app."""
