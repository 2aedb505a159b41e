"""aidc's composition root: the command line, broker launch, and (later) demo and scenarios."""

__version__ = "0.1.0"
