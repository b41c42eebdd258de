"""Stage A data: harm-category sources, balancing, the Chain-of-Draft template and parser,
teacher backends, and the embedded seed dataset."""
