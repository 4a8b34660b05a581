"""The HTTP API: create_app(), routers, dependencies, the error table, health."""
