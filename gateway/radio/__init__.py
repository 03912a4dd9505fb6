"""LoRa buttons: the gateway's radio module on a serial port, and the nodes it hears."""

from .service import RadioService

__all__ = ["RadioService"]
