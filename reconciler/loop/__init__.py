"""The long-running reconciler: when to reconcile. Only this package owns threads."""
