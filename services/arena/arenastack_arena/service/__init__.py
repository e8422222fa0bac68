"""The vote service: model registry, anonymous battles, votes, leaderboard API, web UI."""
