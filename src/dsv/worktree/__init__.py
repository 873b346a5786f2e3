"""The working tree: scanning, status, commit and checkout."""
