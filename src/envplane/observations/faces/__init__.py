"""The observations capability's transports: envplane.v1 over gRPC and REST (with Nextflow's
weblog), and the earlier plugin's nf_ai_comms.AiActionService."""
