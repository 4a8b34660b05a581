"""Cache manager (in-process and Redis tiers). For now: Redis reachability for /readyz."""
