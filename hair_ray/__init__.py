"""hair_ray: HAIR (hardness-aware inverse RL with introspective reasoning) as a Ray trainer."""

__version__ = "0.1.0"
