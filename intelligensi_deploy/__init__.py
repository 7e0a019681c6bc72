"""fluxdeploy: put the FLUX image models into production on rented GPU machines."""

__version__ = "0.1.0"
