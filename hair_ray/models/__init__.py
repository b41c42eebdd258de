"""Model loading: Hugging Face ids and local folders, plus models that work offline."""

from hair_ray.models.registry import cache_dir, resolve_model_path

__all__ = ["cache_dir", "resolve_model_path"]
