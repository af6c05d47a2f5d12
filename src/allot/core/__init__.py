"""The scheduling core: pure decisions over values (no I/O, no clock); see README.md here."""
