"""The faces of the daemon: gRPC servicers and the REST app, thin over the service layer."""
