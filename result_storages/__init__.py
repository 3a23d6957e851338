"""Result storage plugins: one module per backend."""
