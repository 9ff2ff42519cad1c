"""``python -m runback``: the same as the ``runback`` command."""

from runback.cli import main

main()
