"""The Cloudimage URL dialect: ``/v7/{origin}?{operations}&{filters}`` → ``ImageRequest``."""
