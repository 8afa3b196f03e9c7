"""Read context: the internal read API over the normalized store."""
