"""One site in a Python program: the DataCenter API, the runner of its core and fleet, the
client that sends commands and keeps the State the core publishes, and the demo's site."""
