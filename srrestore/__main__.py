"""``python -m srrestore``: the same as the ``srrestore`` command."""

from srrestore.cli.main import main

main()
