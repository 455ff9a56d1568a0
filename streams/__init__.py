"""Stream processing: one Faust app that counts and flags the city's events."""
