"""Process plumbing: the brokers a command starts or attaches to, child processes that die with
their parent, the status line, the terminal's modes and signal handling."""
