"""Device emulators, the async node agents and the fleet runner."""
