"""The alert manager: rules (YAML), signals, the evaluator (one process at a time, by a
lease), incidents, and routing to receivers. docs/monitoring.md, "Alerts and incidents".
"""
