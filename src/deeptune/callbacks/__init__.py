"""Callbacks that Lightning does not ship: each is a `_target_` node of the `callbacks` config,
built by the same loop as Lightning's own (deeptune.builders.callbacks)."""
