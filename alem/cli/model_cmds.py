"""Model commands: predict, evaluate, train, pretrain (filled in by the predictor work)."""
