"""Run workflow node variants on Ray, each inside its own envplane environment; run a
worker handler as a pool of Ray actors inside one (:class:`RayPool`).

>>> from envplane.providers import GrpcEnvironmentProvider
>>> from envplane.ray import RayBatchRunner, Variant
>>> with GrpcEnvironmentProvider() as provider:
...     runner = RayBatchRunner(provider, workflow_id="ml_pipeline", node_id="rag")
...     batch = runner.run(node, [Variant("v1", packages=["numpy==1.26.4"]),
...                               Variant("v2", packages=["numpy==2.1.3"])])
...     batch["v1"].value, batch["v2"].env.python_executable
"""

from envplane.ray.pool import RayPool
from envplane.ray.runner import BatchResult, RayBatchRunner, Variant, VariantResult

__all__ = ["BatchResult", "RayBatchRunner", "RayPool", "Variant", "VariantResult"]
