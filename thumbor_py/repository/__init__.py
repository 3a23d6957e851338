"""The image repository: originals uploaded through the server (Thumbor's upload API), kept in
an original storage the loaders read, behind per-tenant API keys (docs/repository.md)."""
