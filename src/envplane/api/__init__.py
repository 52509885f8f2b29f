"""Transport plumbing, shared by every capability and importing none: the gRPC server and its
guard, the REST app and its guard, the two error tables, the protobuf JSON mapping and the
OpenAPI schemas derived from it, progress streaming. The servicers and routers themselves live
in each capability's ``faces/``."""
