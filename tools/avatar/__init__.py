"""Scripts that build the avatar samples: the procedural body and the built-in poses."""
