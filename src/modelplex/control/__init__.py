"""Control: rate estimation, re-planning decisions, autoscaling (pure), and their driver."""
