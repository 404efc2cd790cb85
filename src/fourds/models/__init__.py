"""Video ViT encoder, attention backends, MAE and readout heads."""
