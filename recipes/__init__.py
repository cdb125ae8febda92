"""App-type knowledge as data: one TOML file per framework, loaded by migrate.resolve.recipes."""
