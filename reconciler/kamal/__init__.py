"""OpenWebUI deployed by Kamal: the rendered project (pure), its files, the hooks and the
executor that runs kamal."""
