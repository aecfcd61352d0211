"""egocrowd: crowdsourced egocentric demonstrations for robot learning, and egocrowd.bench for
long-horizon, multi-person evaluation of embodied AI."""

__version__ = "0.1.0"
