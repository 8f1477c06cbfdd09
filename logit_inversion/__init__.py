"""logit_inversion: feedforward inversion of frozen classifiers (Teterwak et al., ICML 2021)."""
