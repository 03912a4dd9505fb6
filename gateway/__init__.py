"""The Siaga gateway: the daemon on a Raspberry Pi that reads buttons and talks MQTT."""

from .app import Gateway
from .config import GatewayConfig, load_config

__all__ = ["Gateway", "GatewayConfig", "load_config"]
