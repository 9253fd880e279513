"""OpenWebUI: its REST API client, the settings reader and executor, LAN TLS."""
