"""``python -m aimass.cli``: the same as the ``aimass`` command."""

from aimass.cli import main

main()
