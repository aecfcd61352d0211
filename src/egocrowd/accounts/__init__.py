"""Users, roles, organizations, password and token authentication, and the one authorization check
(:mod:`egocrowd.accounts.policy`)."""
