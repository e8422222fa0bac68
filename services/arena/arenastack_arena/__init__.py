"""arenastack arena: Bradley-Terry ratings engine, vote service and web UI."""
