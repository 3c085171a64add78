"""Scripts that are not part of the installed tool: training the shipped toy models, GPU measurement."""
