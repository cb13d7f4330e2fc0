"""The one Jinja environment and where the templates are."""
from __future__ import annotations

import functools
from pathlib import Path

import jinja2


def _templates() -> Path:
    """templates/ of a checkout, or the copy an installed package carries."""
    package = Path(__file__).resolve().parent.parent
    return next((f for f in (package.parent / "templates", package / "templates") if f.is_dir()),
                package / "templates")


TEMPLATES = _templates()
REBUILD = "python -m symlstm.build"


@functools.cache
def environment() -> jinja2.Environment:
    """The one Jinja environment: strict about undefined names, whitespace as written.

    One for the process, so that each template is compiled once (compiling is most of a
    build's time otherwise); Jinja recompiles a template whose file changed on disk."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)
