"""The review queue, acceptance and appeals (owned by the review work of #10)."""
