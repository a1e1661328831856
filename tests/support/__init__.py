"""Helpers the tests share: real servers started on free ports, and generated media."""
