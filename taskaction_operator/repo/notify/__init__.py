"""LISTEN/NOTIFY watches: one shared listener connection per repository, coalescing subscriptions."""

from taskaction_operator.repo.notify.listener import NotificationListener
from taskaction_operator.repo.notify.subscription import Route, Subscription, Watch

__all__ = ["NotificationListener", "Route", "Subscription", "Watch"]
