"""What the reconciler remembers between runs, under its state directory."""
