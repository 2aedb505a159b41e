"""aidc's composition root: the command line, broker launch, the demo, record and replay, the
DataCenter API, scenarios and the pytest plugin."""

__version__ = "0.1.0"
