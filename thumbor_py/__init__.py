"""thumbor-py: a self-hosted, Thumbor-compatible image server."""

from thumbor_py.builder import build_url
from thumbor_py.config import Config, load_config
from thumbor_py.errors import ConfigError, HttpError
from thumbor_py.signing import sign, signed_path
from thumbor_py.srcset import register_jinja, srcset
from thumbor_py.url import ImageRequest, parse, serialise

__all__ = [
    "Config",
    "ConfigError",
    "HttpError",
    "ImageRequest",
    "build_url",
    "load_config",
    "parse",
    "register_jinja",
    "serialise",
    "sign",
    "signed_path",
    "srcset",
]
