"""The transports of the activity slice: gRPC servicers and the REST router."""
