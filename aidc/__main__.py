"""`python -m aidc` is the `aidc` command."""

from aidc.cli import main

raise SystemExit(main())
