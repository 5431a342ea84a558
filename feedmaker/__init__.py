"""feedmaker: scheduled crawler that turns pages without a feed into Atom feeds."""

__version__ = "0.1.0"
