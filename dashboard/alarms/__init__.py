"""Alarms: the life cycle (sans I/O), the store that owns alarm rows, escalation, notices and statistics."""
