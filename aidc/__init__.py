"""aidc's composition root: the command line (cli.py and commands/), process plumbing
(runtime/), one site in a Python program (site/), scripted scenarios (scenarios/) and the
pytest plugin."""

__version__ = "0.1.0"
