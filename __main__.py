"""``python -m selo``: the same as the ``selo`` command."""

from .selo_tasks.cli import main

main()
