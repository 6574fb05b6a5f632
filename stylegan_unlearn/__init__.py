"""stylegan-unlearn: Adapt-then-Unlearn (Tiwary et al., TMLR 2025) for StyleGAN2-ADA / StyleGAN3 pkls."""

__version__ = "0.1.0"
