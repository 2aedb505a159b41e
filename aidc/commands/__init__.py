"""The subcommands of `aidc`, one module each: its `add_parser(sub)` and its `run(args)`."""
