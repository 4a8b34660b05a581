"""Database layer: engine and session scope, models, repositories, search index, migrations."""
