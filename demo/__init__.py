"""The bundled demo: example sites, their config, and the script `make demo` runs (demo/serve.py)."""
