"""cloudtune: a self-hosted control plane for fine-tuning jobs on GPUs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
