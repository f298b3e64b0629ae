"""Tables of the oauth domain."""
