"""Training and evaluation engine (see ``trainer.train`` and ``evaluate.evaluate``)."""
