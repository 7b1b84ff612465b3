"""``python -m gliomaseg``: the same as the ``gliomaseg`` command."""

from .cli import app

app(prog_name="gliomaseg")
