"""Jinja2 e-mail templates (data, not code); this module only says where they are."""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent
