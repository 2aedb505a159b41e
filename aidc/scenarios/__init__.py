"""Scripted scenarios: the TOML loader and its model, conditions and actions, the runner
that plays one on a DataCenter, the batch that runs files for `aidc scenario`, and JUnit."""
