"""How well the value model predicts pass rates: held-out accuracy on the default task and on
real problems, identification speed, unseen task families, drift during a run, warm start."""
