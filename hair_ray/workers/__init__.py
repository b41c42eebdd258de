"""Ray actors: thin wrappers that own a model and call the pure functions in hair_ray.algo."""
