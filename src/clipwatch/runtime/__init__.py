"""What runs beside the API: the worker's loops and demo mode's simulated world."""
