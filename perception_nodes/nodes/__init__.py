from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)  # noqa: F821 - source tree + install space (see the package __init__)
