"""The long-running campaign loop and the steps it is made of (models, proposals, approval)."""
