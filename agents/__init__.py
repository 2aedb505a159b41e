"""Device emulators and the async node agents and fleet runner (issue: device agents)."""
