"""Settings (environment variables prefixed INFERQ_) and logging configuration."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
