"""Helpers behind the lessons in notebooks/: one small module per lesson topic, so the
notebooks stay short cells that call ``lab`` (and the logic here is tested)."""
