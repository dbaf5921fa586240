"""taskaction-operator: records Flyte v2 TaskAction custom resources into PostgreSQL."""

__version__ = "0.1.0"
