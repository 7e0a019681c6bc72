"""fluxdeploy's bundled FLUX server: readiness you can trust, a generation API, and the
right memory strategy per GPU. See docs/contract.md in the repository."""

__version__ = "0.1.0"
