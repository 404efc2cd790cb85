"""fourds: reproducible video MAE scaling studies on 4D tasks."""

__version__ = "0.1.0"
