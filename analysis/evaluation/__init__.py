"""Policy accuracy of an RM's RGD scoring function; evaluation of generation files."""
