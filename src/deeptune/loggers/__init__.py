"""Loggers that need a change from Lightning's own: each is a `_target_` node of the `logger`
config, built by the same loop as Lightning's (deeptune.builders.loggers)."""
