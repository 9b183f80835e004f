"""Object attributes with a density estimate: which object is abnormal, and why."""
