"""Everything that crosses a wire in Siaga, shared by gateway, dashboard and simulator.

Pure code without I/O: feed it bytes, get values or a precise error.
"""

from .errors import BadFrame, BadPayload, BadTopic, ConfigError, OutboxError, SiagaError

__version__ = "0.1.0"

__all__ = [
    "BadFrame",
    "BadPayload",
    "BadTopic",
    "ConfigError",
    "OutboxError",
    "SiagaError",
    "__version__",
]
