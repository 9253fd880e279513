"""reconciler: GitOps for a self-hosted LLM server."""

# The name on PyPI (`reconciler` there is someone else's); the command stays `reconciler`.
DISTRIBUTION = "reconciler-llm"
