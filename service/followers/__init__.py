"""Following the global log: followers with leases and parking, and the persisted views they keep current."""
