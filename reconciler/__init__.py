"""reconciler: GitOps for a self-hosted LLM server."""
