"""Nova's versioned notifications, read from the message bus and handed to subscribers.

Owns the AMQP queue, its liveness and the parsed ``instance.*`` events; it must never keep
or log a notification's secrets (the caller's token, the service catalogue).
"""
