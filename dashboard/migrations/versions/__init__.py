"""The store's Alembic revisions, oldest first (each file names the one it follows)."""
