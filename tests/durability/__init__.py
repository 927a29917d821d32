"""Durability: the SQLite store, the data directory, and no loss across kill -9."""
