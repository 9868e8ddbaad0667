"""usefirst: an open-source Buy Now, Pay Later (先用后付) engine."""

__version__ = "0.1.0"
