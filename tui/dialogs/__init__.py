"""Modal dialogs: confirmation, prompts, and the drain, scale, route, autoscale and fault forms."""
