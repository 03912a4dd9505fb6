"""The JSON Schemas of every MQTT payload (draft 7), read by :mod:`firmware_bridge.payloads`."""
