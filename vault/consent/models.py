"""Tables of the consent domain."""
