"""Discord: webhook URLs, routes, the outbox and delivery worker, messages, the simulator."""
