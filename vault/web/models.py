"""Tables of the web domain."""
