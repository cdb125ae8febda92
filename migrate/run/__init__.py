"""Run: what the migration changes, written through the journal, restarted, checked."""
