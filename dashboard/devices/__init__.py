"""Gateways and buttons: their registry, supervision (troubles), service states, the device view and sites."""
