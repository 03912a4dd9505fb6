"""Time series for InfluxDB 2 (Grafana): points queued in the store with what they describe, written in batches."""
