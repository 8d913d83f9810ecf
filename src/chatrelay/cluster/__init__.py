"""Several instances behind a balancer, through Redis (`REDIS_URL`): each turn's events
mirrored to a Redis Stream that any instance can follow and resume, stops that reach the
instance running the turn, and instance liveness. The database stays the source of truth
for messages; Redis only carries what is live. Only this package imports `redis`."""

from chatrelay.cluster.instances import Instances
from chatrelay.cluster.keys import Keys
from chatrelay.cluster.streams import RedisTurnBuffer

__all__ = ["Instances", "Keys", "RedisTurnBuffer"]
