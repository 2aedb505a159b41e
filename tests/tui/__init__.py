"""Tests of the operator console: Pilot-driven against a real core, agents and mosquitto."""
