"""Training and measuring the shipped toy prior and evaluator (run from the repository root:
``python -m tools.toyworld.train``, ``python -m tools.toyworld.quality``)."""
