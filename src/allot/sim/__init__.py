"""The simulator: replays traces through the scheduling core with a virtual clock."""
