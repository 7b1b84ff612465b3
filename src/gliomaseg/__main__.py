"""``python -m gliomaseg``: the same as the ``gliomaseg`` command."""

from .cli import main

main()
