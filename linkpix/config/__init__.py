"""Configuration: the typed `Settings` (settings.py) and how they are read and reloaded (loading.py).

Values come, highest first, from `LINKPIX_<KEY>` environment variables, a `.env` file beside
`config.json`, `config.json` itself, then the defaults. Every key is declared once, in settings.py, with
its type and help text (the docs list them and a test keeps the two in step).
"""

from linkpix.config.loading import ConfigHolder, LoadedConfig, default_workflow_name, load_config
from linkpix.config.settings import ENV_PREFIX, LAUNCHER_ENV, BackendSpec, Settings

__all__ = ["ENV_PREFIX", "LAUNCHER_ENV", "BackendSpec", "ConfigHolder", "LoadedConfig", "Settings",
           "default_workflow_name", "load_config"]
