"""Running things: one container, a compose stack, the probe inside its network."""
