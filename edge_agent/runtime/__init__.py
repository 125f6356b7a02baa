"""Inference backends behind one small interface, and model manifests."""
