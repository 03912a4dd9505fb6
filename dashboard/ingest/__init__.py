"""The MQTT ingest and the live hub that fans its changes out to the boards."""
