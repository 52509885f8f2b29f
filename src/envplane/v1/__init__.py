"""Generated protobuf and gRPC code for the envplane.v1 API. DO NOT EDIT: run `make proto`."""
