"""Discovery: what the account has and how its code is run, read and never written."""
