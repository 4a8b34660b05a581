"""Monitoring: structured logs (with redaction), and later metrics and alerts."""
