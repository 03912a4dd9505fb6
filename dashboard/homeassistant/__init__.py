"""Home Assistant MQTT discovery (optional, off by default): fire buttons as event entities, connectivity sensors."""
