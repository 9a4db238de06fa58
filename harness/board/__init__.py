"""Board logic that reads only the rows of result.json files (no markdown, no plots): which runs
may be pooled (versions), the absolute score, ranks with ties. Leaf modules: nothing here imports
harness.leaderboard."""
