pytest_plugins = ["tests.harness.plugin", "tests.harness.kamal_fixtures", "tests.harness.openwebui"]
