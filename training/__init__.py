"""Training and evaluation of LiteSeg: ``liteseg-train`` (training.train) and ``liteseg-eval`` (training.evaluate)."""
